"""Hardware-aware settings: bf16, memory format and threads resolved from (simulated) machines."""
import pytest
import torch

from robustgan import hardware as hw

CPU = torch.device("cpu")


def one_line(reason: str) -> bool:
    return isinstance(reason, str) and reason and "\n" not in reason


@pytest.fixture
def avx2_cpu(monkeypatch):
    """A CPU like the issue's: AVX2 only, oneDNN without bf16."""
    monkeypatch.setattr(hw, "cpu_flags", lambda: {"sse2", "avx", "avx2", "fma"})
    monkeypatch.setattr(hw, "mkldnn_bf16", lambda: False)
    monkeypatch.setattr(hw, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(hw, "bf16_cost", lambda device: 17.0)  # no timing in tests


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with avx512_bf16 and oneDNN bf16 kernels."""
    monkeypatch.setattr(hw, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setattr(hw, "mkldnn_bf16", lambda: True)
    monkeypatch.setattr(hw, "cpu_capability", lambda: "AVX512")


def test_native_bf16_cpu_follows_onednn(avx2_cpu):
    ok, reason = hw.native_bf16(CPU)
    assert ok is False and one_line(reason) and "AVX2" in reason


def test_native_bf16_cpu_with_bf16(bf16_cpu):
    ok, reason = hw.native_bf16("cpu")
    assert ok is True and one_line(reason) and "avx512_bf16" in reason


def test_native_bf16_falls_back_to_cpu_flags(monkeypatch):
    monkeypatch.setattr(hw, "mkldnn_bf16", lambda: None)  # a torch that cannot tell
    monkeypatch.setattr(hw, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert hw.native_bf16(CPU)[0] is True
    monkeypatch.setattr(hw, "cpu_flags", lambda: {"avx2"})
    assert hw.native_bf16(CPU)[0] is False
    monkeypatch.setattr(hw, "cpu_flags", lambda: None)  # no /proc/cpuinfo
    ok, reason = hw.native_bf16(CPU)
    assert ok is False and one_line(reason)


def test_resolve_amp_on_an_avx2_cpu(avx2_cpu):
    assert hw.resolve_amp("none", CPU) == (False, "amp none: fp32")
    use, reason = hw.resolve_amp("auto", CPU)
    assert use is False and one_line(reason) and "fp32" in reason and "no native bf16" in reason
    use, reason = hw.resolve_amp("bf16", CPU)
    assert use is True and one_line(reason)
    assert reason.startswith("warning:") and "17x" in reason and "emulated" in reason


def test_resolve_amp_on_a_bf16_cpu(bf16_cpu, monkeypatch):
    monkeypatch.setattr(hw, "bf16_cost", lambda device: pytest.fail("no timing when bf16 is native"))
    use, reason = hw.resolve_amp("auto", CPU)
    assert use is True and one_line(reason) and "bf16" in reason
    use, reason = hw.resolve_amp("bf16", CPU)
    assert use is True and not reason.startswith("warning")


def _fake_gpu(monkeypatch, bf16: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Fake GPU 80GB")


def test_resolve_amp_on_gpus(monkeypatch):
    gpu = torch.device("cuda")
    _fake_gpu(monkeypatch, bf16=True)
    use, reason = hw.resolve_amp("auto", gpu)
    assert use is True and "Fake GPU 80GB" in reason and one_line(reason)
    _fake_gpu(monkeypatch, bf16=False)
    use, reason = hw.resolve_amp("auto", gpu)
    assert use is False and "fp32" in reason and "Fake GPU" in reason
    use, reason = hw.resolve_amp("bf16", gpu)
    assert use is True and reason.startswith("warning:") and one_line(reason)


def test_resolve_amp_rejects_unknown():
    with pytest.raises(ValueError, match="choose one of auto, none, bf16"):
        hw.resolve_amp("fp16", CPU)


def test_resolve_channels_last(monkeypatch):
    assert hw.resolve_channels_last("auto", CPU, "dcgan")[0] is True
    assert hw.resolve_channels_last("auto", CPU, "resnet")[0] is False
    assert hw.resolve_channels_last("auto", CPU, "resnet", bf16=True)[0] is False
    assert hw.resolve_channels_last("auto", CPU, "dcgan", bf16=True)[0] is True
    assert hw.resolve_channels_last("auto", torch.device("cuda"), "resnet")[0] is True
    for value, expect in ((True, True), ("true", True), (False, False), ("false", False)):
        use, reason = hw.resolve_channels_last(value, CPU, "dcgan")
        assert use is expect and "as requested" in reason
    use, reason = hw.resolve_channels_last(True, CPU, "mlp")  # no images: nothing to lay out
    assert use is False and one_line(reason)
    for value in ("auto", True, False):
        assert one_line(hw.resolve_channels_last(value, CPU, "resnet")[1])
    with pytest.raises(ValueError, match="choose auto, true or false"):
        hw.resolve_channels_last("sometimes", CPU, "dcgan")


@pytest.mark.parametrize("cores,runs,expect", [(1, 1, 1), (4, 1, 4), (4, 2, 2), (4, 3, 1), (4, 8, 1), (1, 4, 1)])
def test_resolve_threads_auto(monkeypatch, cores, runs, expect):
    monkeypatch.setattr(hw.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    n, reason = hw.resolve_threads("auto", runs_in_parallel=runs)
    assert n == expect and one_line(reason) and f"{cores} cores" in reason


def test_resolve_threads_explicit_and_default():
    assert hw.resolve_threads(3) == (3, "threads 3: as requested")
    assert hw.resolve_threads("2")[0] == 2
    n, reason = hw.resolve_threads(0)
    assert n == 0 and "torch's default" in reason
    for bad in (-1, "many", 1.5, True):
        with pytest.raises(ValueError, match="train.threads"):
            hw.resolve_threads(bad)
    with pytest.raises(ValueError, match="runs_in_parallel"):
        hw.resolve_threads("auto", runs_in_parallel=0)


def test_bf16_cost_measures_per_device_type(monkeypatch):
    calls = []
    monkeypatch.setattr(hw, "_measured_bf16_cost", lambda kind: calls.append(kind) or 2.0)
    assert hw.bf16_cost(CPU) == 2.0 and hw.bf16_cost("cpu") == 2.0 and calls == ["cpu", "cpu"]


def test_measured_bf16_cost_is_a_positive_ratio_measured_once():
    hw._measured_bf16_cost.cache_clear()
    first = hw._measured_bf16_cost("cpu")
    assert first > 0 and hw._measured_bf16_cost("cpu") == first  # cached: the same value
    assert hw._measured_bf16_cost.cache_info().hits >= 1


def test_describe_machine_keys(monkeypatch):
    monkeypatch.setattr(hw.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    info = hw.describe_machine()
    assert info["cores_available"] == 3
    assert set(info) >= {"cpu", "cpu_capability", "cores_available", "cpu_native_bf16", "torch", "cuda_device"}
    assert info["torch"] == torch.__version__ and isinstance(info["cpu"], str) and info["cpu"]
    assert (info["cuda_device"] is None) == (not torch.cuda.is_available())


# ----------------------------------------------------------------------------- runs that share the cores
from robustgan.experiments import executors  # noqa: E402


@pytest.mark.parametrize("cores,workers,expect", [(1, 1, 1), (2, 2, 1), (4, 2, 2), (16, 3, 5), (2, 8, 1)])
def test_local_executor_splits_the_cores(monkeypatch, cores, workers, expect):
    monkeypatch.setattr(hw.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert executors.LocalExecutor(workers=workers).threads_per_run == expect
    assert executors.make_executor("local", workers=workers, cpus_per_run=3).threads_per_run == 3


def test_with_threads_keeps_an_explicit_setting():
    job = executors.Job("a", "/tmp/a", "toy-8gaussians", ["loss=wgan"])
    assert executors.with_threads(job, 2).overrides == ["loss=wgan", "train.threads=2"]
    assert job.overrides == ["loss=wgan"]  # not modified in place
    mine = executors.Job("b", "/tmp/b", None, ["train.threads=4"])
    assert executors.with_threads(mine, 2).overrides == ["train.threads=4"]


def test_subprocess_gets_threads_in_its_config_and_environment(tmp_path, monkeypatch):
    seen = {}

    class FakePopen:
        def __init__(self, cmd, env, **kw):
            seen["cmd"], seen["env"] = cmd, env

    monkeypatch.setattr(executors.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(hw.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    ex = executors.LocalExecutor(workers=2)
    slot = ex._launch(executors.Job("a", tmp_path / "a", "toy-8gaussians", ["loss=wgan"]))
    slot["fh"].close()
    slot["lock"].__exit__(None, None, None)
    assert seen["cmd"][-2:] == ["loss=wgan", "train.threads=2"]
    assert seen["env"]["OMP_NUM_THREADS"] == seen["env"]["MKL_NUM_THREADS"] == "2"


def test_saved_thread_count_is_not_a_config_difference(tmp_path):
    from robustgan.train.config import dump
    job = executors.Job("a", tmp_path, "toy-8gaussians", ["loss=wgan"])
    saved = executors.with_threads(job, 1).config()
    (tmp_path / "config.yaml").write_text(dump(saved))
    executors.check_run_dir(job, job.config())  # the executor's train.threads=1: no error
    other = executors.Job("a", tmp_path, "toy-8gaussians", ["loss=gan"])
    with pytest.raises(ValueError, match="loss"):
        executors.check_run_dir(other, other.config())


# ----------------------------------------------------------------------------- benchmarks/gpu_check.py
def _gpu_check():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_refuses_without_a_gpu(monkeypatch, capsys):
    mod = _gpu_check()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mod.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpu_check: error: no CUDA GPU") and "\n" not in err


def test_gpu_check_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu.md"
    assert _gpu_check().main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    for reg in ("none", "noise", "gp", "ar", "rfm"):
        assert f"| {reg} |" in text
    assert "4 steps of `robustgan train`" in text
