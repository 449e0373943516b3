"""A plain PyTorch version of the wsparse model and train step, for benchmarks/train_step.py --torch only.

Written here from docs/method.md (not copied from any release): pre-norm blocks with gain-only RMSNorm, causal
attention, exact-GELU MLP, untied unembedding, AbsTopK at the configured locations, and the train step
cross-entropy -> backward -> gradient RMS normalise -> Adam (decoupled decay) -> per-tensor magnitude top-k with the
per-neuron min-alive reservation. torch is a benchmark-only dependency (``pip install .[bench]``); wsparse never
imports it. The point is a fair eager baseline of the same work, so it is written the way one would write it in
PyTorch (torch.topk, F.scaled_dot_product_attention), not as a transcription of the JAX code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wsparse.config import Config


def abs_topk(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keeps the k entries of largest |x| per row (ties at the threshold kept, as in wsparse)."""
    if k >= x.shape[-1]:
        return x
    thr = torch.topk(x.abs(), k, dim=-1, sorted=False).values.min(dim=-1, keepdim=True).values
    return x * (x.abs() >= thr)


class Model(torch.nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        self.m = m
        D, A, M, V = m.d_model, m.d_attn, m.d_mlp, m.vocab_size
        g = torch.Generator().manual_seed(0)
        normal = lambda *shape, s=m.init_std: torch.nn.Parameter(torch.randn(*shape, generator=g) * s)
        zeros = lambda n: torch.nn.Parameter(torch.zeros(n))
        ones = lambda n: torch.nn.Parameter(torch.ones(n))
        proj = m.init_std / math.sqrt(2 * m.n_layer)
        self.wte = normal(V, D)
        self.blocks = torch.nn.ModuleList()
        for _ in range(m.n_layer):
            b = torch.nn.ParameterDict({
                "ln_1": ones(D), "c_attn_w": normal(D, 3 * A), "c_attn_b": zeros(3 * A),
                "a_proj_w": normal(A, D, s=proj), "a_proj_b": zeros(D),
                "ln_2": ones(D), "c_fc_w": normal(D, M), "c_fc_b": zeros(M),
                "m_proj_w": normal(M, D, s=proj), "m_proj_b": zeros(D)})
            self.blocks.append(b)
        self.ln_f = ones(D)
        self.lm_head = normal(V, D)

    def _act(self, x: torch.Tensor, loc: str) -> torch.Tensor:
        if self.m.afrac >= 1.0 or loc not in self.m.afrac_locations:
            return x
        return abs_topk(x, int(self.m.afrac * x.shape[-1]))

    def _norm(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.m.rms_eps) * g

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.m
        B, T = tokens.shape
        H, dh, A = m.n_head, m.d_head, m.d_attn
        x = self.wte[tokens]
        for b in self.blocks:
            h = self._act(self._norm(x, b["ln_1"]), "attn_in")
            qkv = torch.addmm(b["c_attn_b"], h.view(B * T, -1), b["c_attn_w"]).view(B, T, 3 * A)
            q, k, v = (self._act(z, loc) for z, loc in zip(qkv.split(A, -1), ("attn_q", "attn_k", "attn_v")))
            q, k, v = (z.view(B, T, H, dh).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B * T, A)
            x = x + self._act(torch.addmm(b["a_proj_b"], y, b["a_proj_w"]).view(B, T, -1), "attn_out")
            h = self._act(self._norm(x, b["ln_2"]), "mlp_in")
            a = self._act(F.gelu(torch.addmm(b["c_fc_b"], h.view(B * T, -1), b["c_fc_w"])), "mlp_neuron")
            x = x + self._act(torch.addmm(b["m_proj_b"], a, b["m_proj_w"]).view(B, T, -1), "mlp_out")
        return self._norm(x, self.ln_f) @ self.lm_head.T


# name suffix -> (family, min-alive axis): the same table as wsparse/weights.py
_FACTS = {"wte": ("embed", None), "lm_head": ("embed", None), "c_attn_w": ("interior", 0),
          "a_proj_w": ("interior", 1), "c_fc_w": ("interior", 0), "m_proj_w": ("interior", 1),
          "c_attn_b": ("bias", None), "a_proj_b": ("bias", None), "c_fc_b": ("bias", None), "m_proj_b": ("bias", None)}


@torch.no_grad()
def project_(w: torch.Tensor, k: int, min_alive: int, axis: int | None) -> None:
    """In place: keep exactly k entries of w by magnitude, each neuron's top min_alive along ``axis`` first."""
    score = w.abs()
    if min_alive > 0 and axis is not None and min_alive < w.shape[axis]:
        idx = torch.topk(score, min_alive, dim=axis).indices
        score = score.scatter(axis, idx, float("inf"))
    keep = torch.topk(score.flatten(), k, sorted=False).indices
    mask = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
    mask[keep] = True
    w.mul_(mask.view_as(w))


class Trainer:
    """The wsparse train step in PyTorch: loss, backward, RMS-normalised Adam with decoupled decay, projection."""

    def __init__(self, cfg: Config, device: str = "cpu"):
        self.cfg = cfg
        self.model = Model(cfg).to(device)
        self.params = dict(self.model.named_parameters())
        self.mu = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.nu = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.t = 0

    def step(self, batch: torch.Tensor) -> float:
        o, s = self.cfg.optim, self.cfg.sparsity
        logits = self.model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        grads = torch.autograd.grad(loss, list(self.params.values()))
        self.t += 1
        with torch.no_grad():
            n = sum(g.numel() for g in grads)
            rms = torch.sqrt(sum(g.square().sum() for g in grads) / n).clamp_min(1e-30)
            scale = o.grad_rms_max / rms
            lr = o.lr * 0.5  # a mid-schedule learning rate: the schedule's cost is nil
            for (name, p), g in zip(self.params.items(), grads):
                g = g * scale
                mu, nu = self.mu[name], self.nu[name]
                mu.lerp_(g, 1 - o.b1)
                nu.lerp_(g.square(), 1 - o.b2)
                upd = (mu / (1 - o.b1 ** self.t)) / ((nu / (1 - o.b2 ** self.t)).sqrt() + o.eps)
                if p.ndim == 2:
                    upd.add_(p, alpha=o.weight_decay)
                p.sub_(upd, alpha=lr)
                fam, axis = _FACTS.get(name.split(".")[-1], (None, None))
                if s.enabled and fam is not None:
                    d = {"interior": s.interior_density, "embed": s.embed_density, "bias": s.bias_density}[fam]
                    k = max(1, min(p.numel(), round(d * p.numel())))
                    project_(p, k, s.min_alive_per_neuron if fam == "interior" else 0, axis)
        return float(loss.detach())
