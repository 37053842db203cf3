"""Train the reference MoE rectified-flow DiT and the quality classifier on Fashion-MNIST.

  python3 train.py --out build/ [--steps 3500] [--batch 64] [--seed 0]

Writes build/flow.pt (EMA weights + config), build/classifier.pt and build/train-log.json.
Seeded; on the same torch build and thread count it reproduces bit for bit.
"""
import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from switchyard_zoo import data
from switchyard_zoo.model import NULL_LABEL, Classifier, MoEDiT


def train_classifier(args, log):
    torch.manual_seed(args.seed + 1)
    x, y = data.load("train")
    xt, yt = data.load("test")
    x, y, xt, yt = map(torch.from_numpy, (x, y, xt, yt))
    clf = Classifier()
    opt = torch.optim.AdamW(clf.parameters(), lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed + 2)
    for epoch in range(args.clf_epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            b = perm[i:i + 128]
            xb = x[b]
            # light augmentation: random 1-pixel shifts
            sh = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(xb, shifts=sh, dims=(2, 3))
            loss = F.cross_entropy(clf(xb)[0], y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        clf.eval()
        with torch.no_grad():
            acc = (clf(xt)[0].argmax(1) == yt).float().mean().item()
        clf.train()
        print(f"classifier epoch {epoch} test accuracy {acc:.4f}", flush=True)
        log["classifier"] = {"epochs": epoch + 1, "test_accuracy": acc}
    clf.eval()
    return clf


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="build")
    p.add_argument("--steps", type=int, default=3500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clf-epochs", type=int, default=3)
    p.add_argument("--aux-weight", type=float, default=0.01)
    p.add_argument("--label-dropout", type=float, default=0.1)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)
    log = {"args": vars(args), "loss": []}

    t0 = time.time()
    clf = train_classifier(args, log)
    torch.save(clf.state_dict(), os.path.join(args.out, "classifier.pt"))
    log["classifier"]["seconds"] = round(time.time() - t0, 1)

    torch.manual_seed(args.seed)
    x_all, y_all = map(torch.from_numpy, data.load("train"))
    model = MoEDiT()
    ema = copy.deepcopy(model).eval()
    for q in ema.parameters():
        q.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    warm = 200
    t0 = time.time()
    run_loss, run_aux, n = 0.0, 0.0, 0
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / warm)
        lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        b = torch.randint(0, len(x_all), (args.batch,), generator=gen)
        x0, y = x_all[b], y_all[b].clone()
        y[torch.rand(args.batch, generator=gen) < args.label_dropout] = NULL_LABEL
        t = torch.sigmoid(torch.randn(args.batch, generator=gen))  # logit-normal (SD3)
        noise = torch.randn(x0.shape, generator=gen)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
        v, aux = model(xt, t, y)
        mse = F.mse_loss(v, noise - x0)
        loss = mse + args.aux_weight * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        # EMA with warm-up: a plain 0.999 after 1k steps would still hold ~1/3 of the init.
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
        run_loss += mse.item()
        run_aux += float(aux)
        n += 1
        if (step + 1) % 100 == 0:
            el = time.time() - t0
            rec = {"step": step + 1, "mse": round(run_loss / n, 5), "aux": round(run_aux / n, 4),
                   "lr": round(lr, 6), "seconds": round(el, 1)}
            log["loss"].append(rec)
            print(json.dumps(rec), flush=True)
            run_loss, run_aux, n = 0.0, 0.0, 0
        if (step + 1) % 1000 == 0 or step + 1 == args.steps:
            torch.save({"config": ema.config, "state": ema.state_dict(), "step": step + 1},
                       os.path.join(args.out, "flow.pt"))
    log["train_seconds"] = round(time.time() - t0, 1)
    log["torch"] = torch.__version__
    with open(os.path.join(args.out, "train-log.json"), "w") as f:
        json.dump(log, f, indent=1)


if __name__ == "__main__":
    main()
