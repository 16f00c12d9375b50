"""Checkpoints move between devices and world sizes.

CI has no GPU, so the GPU directions are reproduced on the CPU: a checkpoint whose tensors are
tagged as CUDA storages, as a GPU run writes them, must resume, sample and export on a CPU; and a
run whose device is not the CPU (the meta device stands in for a GPU) must get its model and
optimizer state on that device, whatever the file holds. One process and two DDP ranks resume each
other's checkpoints.
"""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, read_metrics, run, tiny

from configurator import configure
from training import checkpoint, devices, loop, settings
from training.devices import attention_kernels, attention_order, compile_for_sampling, peak_memory_gib
from training.errors import UserError
from training.processes import check_cuda_graphs

LOSS_KEYS = ("loss", "train_loss", "val_loss")
# Re-save a checkpoint with every storage tagged 'cuda:0', as torch.save tags a GPU run's tensors.
# Loading such a file without mapping it to the CPU fails on a machine without CUDA.
AS_IF_FROM_CUDA = """
import sys, torch
torch.serialization.register_package(0, lambda obj: "cuda:0", lambda obj, location: None)
torch.save(torch.load(sys.argv[1], weights_only=True), sys.argv[2])
"""


def losses(metrics, after=-1):
    return [(m["iter"], k, m[k]) for m in metrics for k in LOSS_KEYS if k in m and m["iter"] > after]


@pytest.fixture(scope="module")
def runs(char_dataset, tmp_path_factory):
    """A run stopped at iteration 10 (its checkpoint re-tagged as CUDA) and one never stopped (20)."""
    tmp = tmp_path_factory.mktemp("devices")
    flags = dict(max_iters=20, lr_decay_iters=20, eval_interval=10, dropout=0.1)
    full = run("train.py", *tiny(tmp / "full", char_dataset, **flags))
    assert full.returncode == 0, full.stderr
    part = run("train.py", *tiny(tmp / "gpu", char_dataset, **{**flags, "max_iters": 10}))
    assert part.returncode == 0, part.stderr
    ckpt = tmp / "gpu" / "ckpt.pt"
    subprocess.run([sys.executable, "-c", AS_IF_FROM_CUDA, str(ckpt), str(ckpt)], check=True, cwd=REPO)
    return SimpleNamespace(tmp=tmp, flags=flags, full=read_metrics(tmp / "full"), gpu=tmp / "gpu")


def test_the_file_really_holds_cuda_storages(runs):
    if torch.cuda.is_available():
        pytest.skip("a machine with CUDA loads the file either way")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(runs.gpu / "ckpt.pt", weights_only=True)


def test_a_gpu_checkpoint_resumes_exactly_on_the_cpu(runs, char_dataset):
    r = run("train.py", *tiny(runs.gpu, char_dataset, **runs.flags, init_from="resume"))
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout and "at iteration 10" in r.stdout
    assert losses(read_metrics(runs.gpu)) == losses(runs.full)  # bit for bit, before and after the move


def test_a_gpu_checkpoint_samples_and_exports_on_the_cpu(runs, char_dataset, tmp_path):
    r = run("sample.py", f"--out_dir={runs.gpu}", "--device=cpu", "--num_samples=1", "--max_new_tokens=5")
    assert r.returncode == 0, r.stderr
    pytest.importorskip("transformers")
    r = run("-m", "training.hf", f"--out_dir={runs.gpu}", f"--to={tmp_path / 'hf'}")
    assert r.returncode == 0, r.stderr


def test_resume_puts_model_and_optimizer_state_on_the_run_device(char_dataset, tmp_path, monkeypatch):
    """The run's device is 'meta', standing in for a GPU. A loader that mapped the checkpoint onto
    the run's device would put host-side values there too (and here could not even copy the
    weights); the model and every optimizer moment must end up on the run's device."""
    r = run("train.py", *tiny(tmp_path, char_dataset, max_iters=4, eval_interval=2))
    assert r.returncode == 0, r.stderr
    cfg = SimpleNamespace(**configure(settings.DEFAULTS, tiny(tmp_path, char_dataset, init_from="resume",
                                                             device="meta")))
    # Two quirks of meta that no GPU has: the fused AdamW kernel has no meta implementation (the
    # state handling is the same without it), and moving a module to meta replaces its parameters
    # (breaking weight tying) unless they are swapped in place, as CPU -> CUDA moves do.
    adamw = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW", lambda *a, fused=None, **k: adamw(*a, **k))
    monkeypatch.setattr(torch.__future__, "_swap_module_params_on_conversion", True)
    built = loop.build(cfg, SimpleNamespace(name="meta", type="meta", dtype="float32"))
    model, optimizer, start = built.model, built.optimizer, built.start
    assert start.iter == 4
    assert {p.device.type for p in model.parameters()} == {"meta"}
    moments = [t for s in optimizer.state.values() for k, t in s.items() if k != "step"]
    assert moments and {t.device.type for t in moments} == {"meta"}
    saved = checkpoint.load(str(tmp_path / "ckpt.pt"))
    assert all(t.device.type == "cpu" for t in saved["model"].values())


@pytest.mark.parametrize("first,then", [(1, 2), (2, 1)], ids=["1 process then 2 ranks", "2 ranks then 1 process"])
def test_resume_at_another_world_size(first, then, char_dataset, tmp_path):
    """Batches depend on (seed, iteration, micro-step) only, so a run may change its world size at
    a checkpoint; losses match the uninterrupted single process to float32 rounding."""
    flags = dict(max_iters=12, lr_decay_iters=12, eval_interval=6, gradient_accumulation_steps=4, dropout=0.1)
    ref = run("train.py", *tiny(tmp_path / "ref", char_dataset, **flags))
    assert ref.returncode == 0, ref.stderr

    def launch(world, **more):
        launcher = ("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}") if world > 1 else ()
        r = run(*launcher, "train.py", *tiny(tmp_path / "run", char_dataset, **{**flags, **more}))
        assert r.returncode == 0, r.stderr
        return r

    launch(first, max_iters=6)
    assert "at iteration 6" in launch(then, init_from="resume").stdout
    got, want = read_metrics(tmp_path / "run"), read_metrics(tmp_path / "ref")
    assert [(i, k) for i, k, _ in losses(got)] == [(i, k) for i, k, _ in losses(want)]
    for (i, k, a), (_, _, b) in zip(losses(got), losses(want)):
        assert a == pytest.approx(b, rel=1e-5, abs=0), (i, k)


def test_sampling_compiles_with_cuda_graphs_on_cuda_only(monkeypatch):
    """sample.py and bench.py compile generate's model through one helper: CUDA graphs
    (reduce-overhead) on CUDA, the default mode elsewhere, and nothing where compiling fails."""
    modes = []
    model = SimpleNamespace(compile=lambda mode: modes.append(mode))
    monkeypatch.setattr(devices, "compile_works", lambda device: True)
    for device in ("cuda:0", "cuda", "cpu"):
        compile_for_sampling(model, device)
    monkeypatch.setattr(devices, "compile_works", lambda device: False)
    compile_for_sampling(model, "cuda")
    assert modes == ["reduce-overhead", "reduce-overhead", "default"]


def test_cuda_graphs_with_several_micro_steps_per_rank_are_refused():
    """Gradient accumulation under CUDA graphs can give wrong gradients (pytorch/pytorch#169545):
    refused on CUDA with more than one micro-step per rank; one per rank, or another mode, runs."""
    cuda = SimpleNamespace(type="cuda", name="cuda", dtype="bfloat16")
    cfg = SimpleNamespace(compile=True, compile_mode="reduce-overhead", gradient_accumulation_steps=8)
    with pytest.raises(UserError, match=r"compile_mode='reduce-overhead' \(CUDA graphs\) with 8 micro-steps per "
                                        r"rank: .*use gradient_accumulation_steps=1"):
        check_cuda_graphs(cfg, cuda, 1)
    check_cuda_graphs(cfg, cuda, 8)  # one micro-step per rank
    check_cuda_graphs(SimpleNamespace(**{**vars(cfg), "compile_mode": "default"}), cuda, 1)
    check_cuda_graphs(cfg, SimpleNamespace(type="cpu", name="cpu", dtype="float32"), 1)


def test_the_peak_memory_is_the_runs_own_gpus(monkeypatch):
    asked = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: asked.append(device) or 2**30)
    assert peak_memory_gib(SimpleNamespace(type="cuda", name="cuda:1")) == 1.0
    assert asked == ["cuda:1"]
    assert peak_memory_gib(SimpleNamespace(type="cpu", name="cpu")) is None


@pytest.mark.parametrize("setting, device, capability, first", [
    ("auto", "cuda", (9, 0), "CUDNN_ATTENTION"),  # Hopper: cuDNN's attention first
    ("auto", "cuda", (10, 0), "CUDNN_ATTENTION"),
    ("auto", "cuda", (8, 0), None),  # an A100: torch's own order
    ("auto", "cpu", None, None),
    ("flash", "cuda", (8, 0), "FLASH_ATTENTION"),
    ("torch", "cuda", (9, 0), None),
    ("cudnn", "cpu", None, None),  # SDPA's kernel choice is CUDA's alone
])
def test_the_attention_kernel_order_follows_the_gpu(monkeypatch, setting, device, capability, first):
    from torch.nn.attention import SDPBackend

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda name=None: capability)
    order = attention_order(setting, SimpleNamespace(type=device, name=device))
    assert (order[0].name if order else None) == first
    if order:  # every kernel stays allowed, each once
        assert sorted(b.name for b in order) == sorted(b.name for b in (
            SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH))


def test_the_attention_order_holds_inside_its_context_and_is_restored_after(monkeypatch):
    from torch.nn.attention import SDPBackend

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda name=None: (9, 0))
    before = torch._C._get_sdp_priority_order()
    with attention_kernels("auto", SimpleNamespace(type="cuda", name="cuda")):
        assert torch._C._get_sdp_priority_order()[0] == int(SDPBackend.CUDNN_ATTENTION)
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
    assert torch._C._get_sdp_priority_order() == before
