"""Bad inputs of `disk-manager`. HOME and every cache variable point into the case's
workspace, so no case can touch (or relocate) the caches of the machine running the tests."""

from __future__ import annotations

from tests.bad_inputs import Case, mkfifo, write

ISOLATED = {"HOME": "{ws}", "XDG_CACHE_HOME": "{ws}/.cache", "HF_HOME": "{ws}/hf",
            "PIP_CACHE_DIR": "{ws}/pip", "TORCH_HOME": "{ws}/torch"}


def dm(case_id: str, args: tuple[str, ...], stderr: str, **kw) -> Case:
    return Case(case_id, args, prog="disk-manager", stderr=stderr,
                env={**ISOLATED, **kw.pop("env", {})}, **kw)


CASES: list[Case] = [
    dm("dm-status-top-malformed", ("status", "--top", "ten"), "--top"),
    dm("dm-estimate-unknown-model", ("estimate", "nosuch/model"), "cannot estimate"),
    dm("dm-estimate-missing-folder", ("estimate", "./nosuch"), "no such folder"),
    dm("dm-estimate-bad-quant", ("estimate", "mistralai/Mistral-7B-v0.1", "--quant", "2bit"),
       "--quant"),
    dm("dm-estimate-lora-rank-zero", ("estimate", "mistralai/Mistral-7B-v0.1", "--lora-rank",
                                      "0"), "lora_rank"),
    dm("dm-estimate-checkpoints-negative", ("estimate", "mistralai/Mistral-7B-v0.1",
                                            "--checkpoints", "-1"), "checkpoints"),
    dm("dm-check-size-malformed", ("check", "--need", "lots"), "as a size"),
    dm("dm-check-margin-malformed", ("check", "--need", "1GB", "--margin", "much"), "margin"),
    dm("dm-check-missing-need", ("check",), "--need"),
    dm("dm-clean-duration-malformed", ("clean", "--older-than", "soon"), "as a duration"),
    dm("dm-clean-size-malformed", ("clean", "--larger-than", "big"), "as a size"),
    dm("dm-relocate-to-dev-null", ("relocate", "/dev/null"), "/dev/null"),
    dm("dm-relocate-to-proc", ("relocate", "/proc/x"), "/proc"),
    dm("dm-relocate-to-a-file", ("relocate", "afile"), "afile", setup=write("afile", "x")),
    dm("dm-relocate-write-env-to-a-pipe", ("relocate", "dest", "--write-env", "pipe"),
       "not a regular file", setup=mkfifo("pipe")),
    dm("dm-preflight-unknown-model", ("preflight", "nosuch/model", "--out-dir", "out"),
       "cannot estimate"),
    dm("dm-preflight-margin-malformed", ("preflight", "mistralai/Mistral-7B-v0.1", "--out-dir",
                                         "out", "--margin", "x"), "margin"),
    dm("dm-preflight-no-out-dir", ("preflight", "mistralai/Mistral-7B-v0.1"), "--out-dir"),
]
