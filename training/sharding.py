"""
How a model is spread over the ranks of a torchrun: DDP, where every rank holds the whole model,
its gradients and AdamW's moments, or FSDP2 (torch.distributed.fsdp.fully_shard), where each rank
holds 1/N of them and gathers a block's weights only while it computes that block.

With FSDP every transformer block is sharded on its own and the root (embeddings, final LayerNorm
and the tied lm_head) as one more unit. Weights stay fp32 (the master copy), are gathered in the
run's low-precision dtype for compute, and gradients are reduce-scattered in fp32. Across the
micro-steps of an iteration gradients are summed unsharded (in fp32) and reduce-scattered once, on
the last, as DDP all-reduces once. A checkpoint holds the full, unsharded state in the same format
as a single process writes it (gathered to rank 0), so any run resumes it at any world size, with
or without FSDP, and sample.py and training/hf.py read it as they read any other.
"""

import torch

FSDP_DTYPES = ("float32", "bfloat16")  # GradScaler (fp16) does not work on sharded gradients


def shard(model, dtype):
    """Shard a GPT in place with FSDP2, gathering its weights in dtype (before its optimizer is made:
    the optimizer must hold the sharded parameters)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=getattr(torch, dtype), reduce_dtype=torch.float32)
    for block in model.transformer.h:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def unwrapped(model):
    """The GPT under torch.compile and DDP wrappers."""
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def sync_gradients(model, fsdp, on):
    """Whether this micro-step's backward reduces gradients across the ranks (the last one does)."""
    if fsdp:
        unwrapped(model).set_requires_gradient_sync(on)
    else:
        model.require_backward_grad_sync = on


def local(norm, fsdp):
    """A gradient norm as a plain tensor (clip_grad_norm_ returns a DTensor under FSDP)."""
    return norm.full_tensor() if fsdp else norm


def names(model, optimizer):
    """The name of each of the optimizer's parameters, in its order (how a state_dict numbers them)."""
    named = {id(p): name for name, p in model.named_parameters()}
    return [named[id(p)] for group in optimizer.param_groups for p in group["params"]]


def renamed(optimizer_state, key):
    """An optimizer state_dict with its parameters renamed by key (a dict or a list)."""
    return {"state": {key[p]: s for p, s in optimizer_state["state"].items()},
            "param_groups": [{**g, "params": [key[p] for p in g["params"]]} for g in optimizer_state["param_groups"]]}


def full_state(model, optimizer, fsdp, master):
    """(model state_dict, optimizer state_dict) of the whole model on rank 0's CPU, as a single
    process's state_dict() gives them; (None, None) on the other ranks. Under FSDP every rank must
    call it: the shards are gathered. optimizer None: the model's alone."""
    if not fsdp:
        return (model.state_dict(), optimizer and optimizer.state_dict()) if master else (None, None)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    optimizer_state = optimizer and get_optimizer_state_dict(model, optimizer, options=options)
    if not master:
        return None, None
    # gathered named by parameter, as distributed checkpoints are; saved numbered, as state_dict() is
    order = {name: i for i, name in enumerate(names(model, optimizer))} if optimizer else None
    return model_state, optimizer and renamed(optimizer_state, order)


def load_optimizer(model, optimizer, state, fsdp):
    """Load a single process's optimizer state_dict, into sharded parameters too."""
    if not fsdp:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    named = renamed(state, names(model, optimizer))
    set_optimizer_state_dict(model, optimizer, named, options=StateDictOptions(full_state_dict=True))
