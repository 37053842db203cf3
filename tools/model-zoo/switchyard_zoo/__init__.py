"""Reference MoE rectified-flow DiT for Switchyard: model, training, export."""
