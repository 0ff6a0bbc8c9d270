"""gro-fast doctor: runs, reports the extension, its ops, Triton mode and attention backends."""
import subprocess
import sys

from gro_fast import _ext, doctor


def test_doctor_reports_everything(capsys):
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    for key in ("python", "torch", "triton", "transformers", "gro_fast", "gro_fast._C", "openmp",
                "triton mode", "attention", "gpu"):
        assert key in out, f"doctor output lacks {key!r}:\n{out}"
    assert "sdpa" in out
    if _ext.extension() is not None:
        assert "box_iou_cpu" in out and "mask_iou_cpu" in out and "rle_iou_cpu" in out
    from gro_fast.ops._dispatch import triton_mode
    assert triton_mode() in out


def test_doctor_report_functions():
    report = doctor.extension_report()
    assert report["loaded"] == (_ext.extension() is not None)
    if report["loaded"]:
        assert "polygon_iou_cpu" in report["cpu_ops"]
        assert report["openmp_threads"] >= 1
        assert report["with_cuda"] == bool(report["cuda_ops"])
    assert "sdpa" in doctor.attention_backends()


def test_doctor_cli_entry():
    result = subprocess.run([sys.executable, "-m", "gro_fast.cli", "doctor", "--strict"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == (0 if _ext.extension() is not None else 1), result.stderr
    assert "triton mode" in result.stdout
