"""
A GPT-2 language model in one file, whose MLP activation is chosen by name.

Module names and state-dict keys follow nanoGPT (and so OpenAI's GPT-2):
transformer.wte / wpe / h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj} / ln_f,
and lm_head tied to wte. The only departure is the MLP: `GPTConfig.activation` names an
entry of ACTIVATIONS, and that is the single place an activation is defined.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint


def identity(x):
    return x


def relu2(x):
    # Squared ReLU (So et al. 2021, "Primer"); used by modded-nanogpt and nanochat.
    return F.relu(x).square()


def gelu_tanh(x):
    # GPT-2's GELU: OpenAI's code used the tanh approximation ("gelu_new" in transformers).
    return F.gelu(x, approximate="tanh")


class Activation(NamedTuple):
    fn: Callable  # elementwise
    gated: bool  # the MLP computes fn(x W) * (x V) (Shazeer 2020) instead of fn(x W)


# F.gelu defaults to the exact erf form, which is what nanoGPT's nn.GELU() computes.
ACTIVATIONS = {
    "gelu": Activation(F.gelu, gated=False),
    "gelu_tanh": Activation(gelu_tanh, gated=False),
    "relu": Activation(F.relu, gated=False),
    "relu2": Activation(relu2, gated=False),
    "silu": Activation(F.silu, gated=False),
    "none": Activation(identity, gated=False),
    "swiglu": Activation(F.silu, gated=True),
    "geglu": Activation(F.gelu, gated=True),
    "reglu": Activation(F.relu, gated=True),
    "bilinear": Activation(identity, gated=True),
}


def mlp_hidden(n_embd, gated, bias):
    """Hidden width of the MLP.

    Ungated: 4*d, as in GPT-2, so the MLP has 8d^2 weights (+ 5d biases).
    Gated: c_fc produces two halves (W and V) of width h, so the MLP has 3dh weights
    (+ 2h + d biases). Matching parameters gives h = (8d^2 + 4d) / (3d + 2) with biases,
    h = 8d/3 without, rounded to the nearest multiple of 8 (e.g. d=768: 2048 instead of 3072).
    """
    if not gated:
        return 4 * n_embd
    exact = (8 * n_embd**2 + 4 * n_embd) / (3 * n_embd + 2) if bias else 8 * n_embd / 3
    return max(8, 8 * round(exact / 8))


MUP_KEYS = ("mup_base_width", "mup_base_head_dim", "mup_input_mult", "mup_output_mult", "mup_attn_mult")


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 for speed
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers, as in GPT-2
    activation: str = "gelu"
    mup_base_width: int = 0  # µP's base width (0: the standard parametrization); see GPT.__init__
    mup_base_head_dim: int = 0  # µP: the base's head size (0: this model's; widths that grow by heads)
    mup_input_mult: float = 1.0  # µP's α_in: multiplies the embeddings
    mup_output_mult: float = 1.0  # µP's α_out: multiplies the logits (beside 1/m)
    mup_attn_mult: float = 1.0  # µP's α_attn: multiplies the attention scale

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.mup_base_width < 0 or self.mup_base_head_dim < 0:
            raise ValueError(f"mup_base_width={self.mup_base_width} and mup_base_head_dim={self.mup_base_head_dim} "
                             "must be >= 0 (a base width of 0 turns µP off)")
        mults = dict(mup_input_mult=self.mup_input_mult, mup_output_mult=self.mup_output_mult,
                     mup_attn_mult=self.mup_attn_mult)
        if any(not m > 0 for m in mults.values()):
            raise ValueError(f"µP's multipliers must be > 0: {mults}")
        if not self.mup_base_width and (self.mup_base_head_dim or any(m != 1 for m in mults.values())):
            raise ValueError("mup_base_head_dim and the mup_*_mult multipliers are µP's: set mup_base_width too")

    @property
    def width_mult(self):
        """µP's width multiplier n_embd / base width; 1 without µP."""
        return self.n_embd / self.mup_base_width if self.mup_base_width else 1.0

    @property
    def base_head_dim(self):
        return self.mup_base_head_dim or self.n_embd // self.n_head

    @property
    def attention_scale(self):
        """What q.k is multiplied by, or None for SDPA's own 1/sqrt(d_head) (the standard model's, and
        µP's wherever its head is the base's and α_attn is 1, so that µP at its base is the standard
        model exactly). Under µP: α_attn sqrt(d_base_head) / d_head, since q and k grow correlated as
        the head widens (the reference writes 8/d_head: 1/sqrt(d_head) at a head of 64)."""
        d_head = self.n_embd // self.n_head
        if not self.mup_base_width or (d_head == self.base_head_dim and self.mup_attn_mult == 1):
            return None
        return self.mup_attn_mult * math.sqrt(self.base_head_dim) / d_head


def liger_cross_entropy(x, weight, targets):
    # Liger Kernel's Triton kernels (CUDA only; requirements-gpu.txt), imported when first used. They are
    # fused already, and their autograd Function loops over chunks computing gradients in forward: the
    # compiler is kept out of it (a graph break before the loss) rather than asked to trace it.
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    return torch.compiler.disable(liger_fused_linear_cross_entropy)(x, weight, targets, ignore_index=-1)


def torch_cross_entropy(x, weight, targets):
    # Compiled, the graph needs allow_retain_graph=True: torch would switch it on itself, warning, and
    # the warning breaks the graph. Eager, False saves one gradient-sized buffer.
    options = nn.LinearCrossEntropyOptions(allow_retain_graph=torch.compiler.is_compiling())
    return F.linear_cross_entropy(x, weight, targets, ignore_index=-1, options=options)


# Fused linear cross-entropy: the mean loss of (x @ weight.T) against targets (-1 ignored), computed
# in chunks of rows so that the (tokens x vocab) logits never exist at once. training/loop.py's fused_loss_kernel
# chooses one.
FUSED_LOSSES = {"liger": liger_cross_entropy, "torch": torch_cross_entropy}


class KVCache:
    """Keys and values, one preallocated buffer per layer of block_size positions (in the dtype
    attention runs in, which autocast may make bf16), written in place at each step's positions
    (k[:, :, pos] = new: compiled, a write of the new entries alone). Attention reads the whole
    buffer, the positions not yet written masked out, so a decode step always has the same shapes
    and buffers: compiled, it can replay as one CUDA graph (a static cache, as in gpt-fast). The
    decode step's inputs are buffers too, written in place: the token (a view of the growing
    sequence has a new stride at every token, and under CUDA graphs each new stride is a new graph
    recorded, which made the cache 3x slower than none) and its position, advanced on the device so
    that decoding never waits on the host."""

    def __init__(self, config, batch_size, dtype, device):
        self.block_size, self.key = config.block_size, self.key_of(config, batch_size, dtype, device)
        shape = (batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.token = torch.zeros(batch_size, 1, dtype=torch.long, device=device)  # the token to decode next
        self.next = torch.zeros(1, dtype=torch.long, device=device)  # the position it takes
        for buffer in (*self.k, *self.v, self.token, self.next):  # a CUDA graph reads them at fixed addresses
            torch._dynamo.mark_static_address(buffer)

    @staticmethod
    def key_of(config, batch_size, dtype, device):
        return batch_size, config.block_size, dtype, torch.device(device)

    def update(self, layer, k, v, pos):
        self.k[layer][:, :, pos] = k
        self.v[layer][:, :, pos] = v
        return self.k[layer], self.v[layer]


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout, self.layer = config.n_head, config.n_embd, config.dropout, layer
        self.scale = config.attention_scale

    def forward(self, x, cache=None, pos=None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True, scale=self.scale)
        else:  # a query sees the cached keys at or before its own position
            k, v = cache.update(self.layer, k, v, pos)
            mask = pos[:, None] >= torch.arange(cache.block_size, device=pos.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.act, self.gated = ACTIVATIONS[config.activation]
        hidden = mlp_hidden(config.n_embd, self.gated, config.bias)
        # Gated MLPs compute both halves (x W and x V) in one matmul.
        self.c_fc = nn.Linear(config.n_embd, hidden * (2 if self.gated else 1), bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.c_fc(x)
        if self.gated:
            a, b = h.chunk(2, dim=-1)
            h = self.act(a) * b
        else:
            h = self.act(h)
        return self.dropout(self.c_proj(h))

    def folded(self):
        """The MLP as one n_embd x n_embd Linear; exact only for activation 'none'.

        W_proj (W_fc x + b_fc) + b_proj = (W_proj W_fc) x + (W_proj b_fc + b_proj).
        """
        if self.act is not identity or self.gated:
            raise ValueError("only the ungated MLP with activation 'none' is a single linear map")
        fc, proj = self.c_fc, self.c_proj
        lin = nn.Linear(fc.in_features, proj.out_features, bias=fc.bias is not None).to(fc.weight)
        with torch.no_grad():
            lin.weight.copy_(proj.weight @ fc.weight)
            if fc.bias is not None:
                lin.bias.copy_(proj.weight @ fc.bias + proj.bias)
        return lin


class Block(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, pos=None):
        x = x + self.attn(self.ln_1(x), cache, pos)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        # Recompute each block's activations in backward instead of keeping them (training/loop.py's build sets it):
        # memory for one block's activations instead of all, for about a third more compute.
        self.activation_checkpointing = False
        # Training loss from the final hidden states in chunks, never holding all of the (tokens x vocab)
        # logits at once: a name in FUSED_LOSSES, or None for the plain loss (training/loop.py's build sets it).
        self.fused_loss = None
        self.kv_cache = None  # generate's, kept between calls (new_cache)
        # GPT-2 scales the init of the projections into the residual stream by 1/sqrt(2 n_layer),
        # since each layer adds two of them (attention and MLP) to the stream.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        # µP (maximal-update parametrization, Yang et al. 2022, for Adam), so that the best learning
        # rate stays put as the model widens, with m = n_embd / mup_base_width. The references'
        # rules (the paper; microsoft/mup): the hidden matrices (every matrix of the blocks) start
        # 1/sqrt(m) as large, learn at 1/m the rate and decay at m times the rate, so that AdamW's
        # decay per step does not depend on width (configure_optimizers); attention scales q.k by
        # sqrt(d_base_head) / d_head (GPTConfig.attention_scale); the logits are multiplied by
        # α_out / m; embeddings, LayerNorms and biases are as without µP; the multipliers α_in, α_out
        # and α_attn are the tunable constants. Ours, to stay GPT-2 where µP leaves it open: every
        # multiplier is 1 and the head at its base size, so that µP at its base width is the
        # standard model exactly; queries and the (tied) readout are not zero-initialised; LayerNorm's
        # epsilon is unchanged.
        if config.mup_base_width:
            with torch.no_grad():
                for p in self.transformer.h.parameters():
                    if p.dim() >= 2:
                        p.div_(math.sqrt(config.width_mult))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding=True):
        """Parameters; by default without the position embeddings (the token embeddings
        count, since they double as the output layer's weights)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx, targets=None, cache=None, pos=None):
        """Logits, and the loss when targets are given. With a KVCache, pos holds the positions of
        idx's tokens (a tensor, so that a compiled step does not change with it)."""
        if pos is None:
            if idx.size(1) > self.config.block_size:
                raise ValueError(f"sequence of {idx.size(1)} tokens exceeds block_size {self.config.block_size}")
            pos = torch.arange(idx.size(1), device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        if self.config.mup_input_mult != 1:
            x = x * self.config.mup_input_mult
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)  # dropout masks are replayed as they were
            else:
                x = block(x, cache, pos)
        return self.head(x, targets)

    def head(self, x, targets=None):
        """The final LayerNorm, the output layer and the loss: (logits, loss). A method of its own
        so that it can be compiled on its own (train.py does, under FSDP)."""
        x = self.transformer.ln_f(x)
        if self.config.mup_base_width:  # µP's output multiplier α_out/m: the logits stay O(1) as width grows
            x = x * (self.config.mup_output_mult / self.config.width_mult)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None  # inference needs the last position only
        if self.fused_loss and self.training:
            return None, self.chunked_loss(x.flatten(0, 1), targets.reshape(-1))
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def chunked_loss(self, x, targets):
        """Cross-entropy of lm_head(x) against targets without the logits (the same value)."""
        weight = self.lm_head.weight
        if torch.is_autocast_enabled(x.device.type):  # autocast does not cast inside these ops: as for lm_head
            dtype = torch.get_autocast_dtype(x.device.type)
            x, weight = x.to(dtype), weight.to(dtype)
        return FUSED_LOSSES[self.fused_loss](x, weight, targets).float()  # as autocast gives cross_entropy's

    def crop_block_size(self, block_size):
        """Shrink the context, e.g. to fine-tune GPT-2 (1024) with a smaller block."""
        if block_size > self.config.block_size:
            raise ValueError(f"block_size {block_size} is larger than the model's {self.config.block_size}")
        self.config.block_size = block_size
        self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        """AdamW decaying the matrices (weights, embeddings), not biases or LayerNorm gains. Under µP
        the hidden matrices form a third group with lr_scale 1/m: the training step sets each group's
        rate to the schedule's times its lr_scale (1 where there is none)."""
        params = [p for p in self.parameters() if p.requires_grad]
        hidden = {id(p) for p in self.transformer.h.parameters() if p.dim() >= 2} if self.config.mup_base_width \
            else set()
        groups = [
            {"params": [p for p in params if p.dim() >= 2 and id(p) not in hidden], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        if hidden:  # decay λ m at rate η/m: the same decay per step at every width
            m = self.config.width_mult
            groups.append({"params": [p for p in params if id(p) in hidden], "weight_decay": weight_decay * m,
                           "lr_scale": 1 / m})
        # The fused kernel (CUDA, CPU, MPS) does the whole update in a few launches, and can skip an
        # update on the device when a gradient is not finite (training/loop.py's Step.update).
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=True)

    def flops_per_token(self):
        """Training FLOPs per token: 6 per parameter (forward + backward) plus attention scores
        (PaLM paper, appendix B), with the context at its full block_size."""
        cfg = self.config
        return 6 * self.get_num_params() + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    def estimate_mfu(self, tokens_per_s, peak_flops, devices=1):
        """Model FLOPs utilisation: the training FLOP/s achieved by `devices` devices together (at
        tokens_per_s in all) as a fraction of their peak, peak_flops each."""
        return self.flops_per_token() * tokens_per_s / (peak_flops * devices)

    def new_cache(self, batch_size, device):
        """A KV cache for generate. The model keeps the last one and hands it out again while the
        batch size, context, dtype and device stay (what an earlier generation left in it is masked
        out, since positions not yet written are): compiled, the decode step then reads the same
        buffers in every generation and after every window slide, and its CUDA graph is recorded once."""
        autocast = torch.is_autocast_enabled(device.type)
        dtype = torch.get_autocast_dtype(device.type) if autocast else self.lm_head.weight.dtype
        if self.kv_cache is None or self.kv_cache.key != KVCache.key_of(self.config, batch_size, dtype, device):
            self.kv_cache = KVCache(self.config, batch_size, dtype, device)
        return self.kv_cache

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        """Continue idx (B, T) by max_new_tokens sampled tokens.

        The model sees at most block_size tokens. When the context fills up it is cut back to
        its last block_size // 2 tokens (in both paths, so they agree token for token). With
        learned absolute positions every position shifts when the window slides, so a cache must
        be rebuilt after each slide; sliding by half a window rebuilds it once per block_size // 2
        new tokens instead of at every token.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if top_k is not None and top_k <= 0:
            raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
        window = self.config.block_size
        start = max(0, idx.size(1) - window)  # first token of the context the model sees
        cache = None
        for _ in range(max_new_tokens):
            if idx.size(1) - start > window:
                start, cache = idx.size(1) - max(1, window // 2), None
            if not use_cache:
                logits, _ = self(idx[:, start:])
            elif cache is None:  # the context at once, then one token at a time
                # A copy of its own (strides that follow its length) with a length marked dynamic: the
                # prefill is compiled once for any length that a slide leaves.
                context = idx[:, start:].clone(memory_format=torch.contiguous_format)
                pos = torch.arange(context.size(1), device=idx.device)
                torch._dynamo.maybe_mark_dynamic(context, 1)
                torch._dynamo.maybe_mark_dynamic(pos, 0)
                cache = self.new_cache(idx.size(0), idx.device)
                logits, _ = self(context, cache=cache, pos=pos)
                cache.next.fill_(context.size(1))
            else:
                logits, _ = self(cache.token, cache=cache, pos=cache.next)
                cache.next += 1  # on the device: the next step need not wait for the host
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
            if cache is not None:
                cache.token.copy_(idx_next)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx
