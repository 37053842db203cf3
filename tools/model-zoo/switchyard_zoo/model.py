"""Class-conditional rectified-flow DiT with sparse MoE feed-forward layers.

Shapes (B images, N = (28/patch)^2 tokens, D width, E experts, H expert hidden):
  Embed:  x [B,1,28,28], t [B], y [B] (int64; NULL_LABEL = unconditional) -> h [B,N,D], c [B,D]
  Dense:  h, c -> h1 [B,N,D] (after attention), u [B,N,D] (MoE input), logits [B,N,E], gate [B,D]
  Expert: u rows [R,D] -> [R,D]        (R = rows routed to this expert; any count)
  Shared: u rows [R,D] -> [R,D]
  Final:  h, c -> v [B,1,28,28]
Block output: h2 = h1 + gate[:,None] * (sum_k w_k expert_{i_k}(u) + shared(u)),
with (i_k, w_k) the top-k of softmax(logits) renormalised over the k chosen.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 10
NULL_LABEL = NUM_CLASSES  # label-dropout / unconditional class index


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = (t[:, None].float() * 1000.0) * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def pos_embed_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin/cos position embedding [grid*grid, dim]."""
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                            torch.arange(grid, dtype=torch.float64), indexing="ij")
    out = []
    for pos in (ys.reshape(-1), xs.reshape(-1)):
        a = pos[:, None] * omega[None]
        out += [torch.sin(a), torch.cos(a)]
    return torch.cat(out, dim=1).float()


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Embed(nn.Module):
    def __init__(self, dim: int, patch: int, image: int = 28, channels: int = 1, freq_dim: int = 256):
        super().__init__()
        self.patch, self.freq_dim = patch, freq_dim
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)
        self.register_buffer("pos", pos_embed_2d(dim, image // patch)[None], persistent=True)
        self.t_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.y_embed = nn.Embedding(NUM_CLASSES + 1, dim)

    def forward(self, x, t, y):
        h = self.proj(x).flatten(2).transpose(1, 2) + self.pos
        c = self.t_mlp(timestep_embedding(t, self.freq_dim)) + self.y_embed(y)
        return h, c


class Dense(nn.Module):
    """adaLN attention half of a block plus the router."""

    def __init__(self, dim: int, heads: int, experts: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.router = nn.Linear(dim, experts, bias=False)
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, h, c):
        b, n, d = h.shape
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        a = modulate(self.norm1(h), s1, sc1)
        qkv = self.qkv(a).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.heads)), dim=-1)
        a = (att @ v).transpose(1, 2).reshape(b, n, d)
        h1 = h + g1[:, None] * self.proj(a)
        u = modulate(self.norm2(h1), s2, sc2)
        return h1, u, self.router(u), g2


class Expert(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, u):
        return self.fc2(F.gelu(self.fc1(u), approximate="tanh"))


class Final(nn.Module):
    def __init__(self, dim: int, patch: int, image: int = 28, channels: int = 1):
        super().__init__()
        self.patch, self.grid, self.channels = patch, image // patch, channels
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.out = nn.Linear(dim, patch * patch * channels)
        for m in (self.ada[1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, h, c):
        shift, scale = self.ada(c).chunk(2, dim=1)
        p, g, ch = self.patch, self.grid, self.channels
        o = self.out(modulate(self.norm(h), shift, scale))  # [B, N, p*p*C]
        o = o.reshape(-1, g, g, p, p, ch).permute(0, 5, 1, 3, 2, 4)
        return o.reshape(-1, ch, g * p, g * p)


def route(logits: torch.Tensor, top_k: int):
    """softmax over experts, top-k, renormalised over the chosen k."""
    probs = torch.softmax(logits, dim=-1)
    w, idx = probs.topk(top_k, dim=-1)
    return probs, idx, w / w.sum(-1, keepdim=True)


class Block(nn.Module):
    def __init__(self, dim, heads, experts, expert_hidden, shared_hidden, top_k):
        super().__init__()
        self.top_k = top_k
        self.dense = Dense(dim, heads, experts)
        self.experts = nn.ModuleList(Expert(dim, expert_hidden) for _ in range(experts))
        self.shared = Expert(dim, shared_hidden) if shared_hidden > 0 else None

    def forward(self, h, c, record=None):
        b, n, d = h.shape
        h1, u, logits, gate = self.dense(h, c)
        uf = u.reshape(-1, d)
        probs, idx, w = route(logits.reshape(-1, logits.shape[-1]), self.top_k)
        out = torch.zeros_like(uf)
        for e, expert in enumerate(self.experts):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if rows.numel():
                out.index_add_(0, rows, expert(uf[rows]) * w[rows, slot, None])
        if self.shared is not None:
            out = out + self.shared(uf)
        if record is not None:
            record.append((idx.reshape(b, n, -1), w.reshape(b, n, -1)))
        # Switch-style load-balancing loss: E * sum_e f_e * P_e
        num_e = probs.shape[-1]
        frac = torch.zeros(num_e).index_add_(0, idx.reshape(-1), torch.ones(idx.numel())) / idx.numel()
        aux = num_e * (frac * probs.mean(0)).sum()
        return h1 + gate[:, None] * out.reshape(b, n, d), aux


class MoEDiT(nn.Module):
    def __init__(self, dim=128, depth=6, heads=4, patch=4, experts=32, expert_hidden=64,
                 shared_hidden=128, top_k=2):
        super().__init__()
        self.config = dict(dim=dim, depth=depth, heads=heads, patch=patch, experts=experts,
                           expert_hidden=expert_hidden, shared_hidden=shared_hidden, top_k=top_k)
        self.embed = Embed(dim, patch)
        self.blocks = nn.ModuleList(Block(dim, heads, experts, expert_hidden, shared_hidden, top_k)
                                    for _ in range(depth))
        self.final = Final(dim, patch)

    def forward(self, x, t, y, record=None):
        h, c = self.embed(x, t, y)
        aux = 0.0
        for blk in self.blocks:
            h, a = blk(h, c, record)
            aux = aux + a
        return self.final(h, c), aux / len(self.blocks)


class Classifier(nn.Module):
    """Small CNN for sample-quality checks; features = penultimate layer (for a Fréchet distance)."""

    def __init__(self, feat=64):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, feat), nn.ReLU())
        self.head = nn.Linear(feat, NUM_CLASSES)

    def forward(self, x):
        f = self.fc(self.conv(x))
        return self.head(f), f
