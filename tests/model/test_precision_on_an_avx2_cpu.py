"""features.precision on a CPU without bf16 kernels: the features stage run on QEMU's AVX2-only CPU, no mock.

OpenVINO ignores a bf16 hint there and runs float32; the stage must say so in one line and record it.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tasks.core.params import SplitParams
from tasks.features import PRECISION_FILE, features
from tasks.vgg.feature_store import read_feature_set
from tests.support.cpu import QEMU, cpu_flags, openvino_runs_bf16, run_on_avx2_only_cpu
from tests.support.params import features_params, reorganize_params
from tests.support.photos import organized_photos, split_photos
from tests.support.workspace import PROJECT, merged, write_paths

pytestmark = pytest.mark.skipif(QEMU is None, reason="needs qemu-x86_64 (apt install qemu-user): a CPU without AVX-512")

# A seeded random VGG16 at 32x32 (1/49 of the work at 224): emulated, the stage takes about a minute.
SMALL = {"weights": "none", "seed": 0, "image_size": 32, "batch_size": 4, "backend": "openvino"}
PHOTO_LIMIT = reorganize_params().max_photo_bytes


def test_features_on_an_avx2_only_cpu_warn_and_record_the_float32_that_ran(tmp_path: Path):
    organized_photos(tmp_path, per_class=3, test_count=1)
    split_photos(tmp_path, SplitParams(seed=0, valid_size=2, sample_train_size=2, sample_valid_size=2))
    write_paths(
        tmp_path,
        {
            "organized": "organized",
            "shards": "shards",
            "classes": "classes.json",
            "split": "split.csv",
            "features": "features",
            "metrics": "metrics",
        },
    )
    params = merged(
        yaml.safe_load((PROJECT / "params.yaml").read_text()), {"features": SMALL | {"precision": "mixed_bfloat16"}}
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "shards").mkdir()
    shutil.copy(tmp_path / "photos.zip", tmp_path / "shards" / "0.zip")  # one shard: every photo

    result = run_on_avx2_only_cpu(["-m", "tasks.features", "0"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("features@0: warning:")]
    assert warnings == [
        "features@0: warning: features.precision is mixed_bfloat16 but openvino runs float32 on this CPU, which lacks "
        "the instructions for mixed_bfloat16; the features are float32 ones (recorded as precision_used): set "
        "features.precision to float32 to ask for what runs"
    ]
    recorded = {"backend": "openvino", "precision": "mixed_bfloat16", "precision_used": "float32"}
    assert json.loads((tmp_path / "metrics/features/0" / PRECISION_FILE).read_text()) == recorded
    assert json.loads((tmp_path / "features/0" / PRECISION_FILE).read_text()) == recorded

    # The features are float32's: the same stage asked for float32 on this machine gives them (float16 storage).
    features(
        tmp_path / "split.csv",
        tmp_path / "photos.zip",
        tmp_path / "organized",
        tmp_path / "float32",
        features_params(**SMALL),
        PHOTO_LIMIT,
        tmp_path / "classes.json",
        0,
    )
    emulated = read_feature_set(tmp_path / "features/0", "train").features.astype(np.float32)
    native = read_feature_set(tmp_path / "float32", "train").features.astype(np.float32)
    assert np.abs(native).max() > 0
    np.testing.assert_allclose(emulated, native, rtol=2e-3, atol=1e-3 * np.abs(native).max())

    # and on this machine's own CPU the bf16 ask gives what its flags say, without a warning where it runs bf16
    here = tmp_path / "here"
    features(
        tmp_path / "split.csv",
        tmp_path / "photos.zip",
        tmp_path / "organized",
        here,
        features_params(**SMALL, precision="mixed_bfloat16"),
        PHOTO_LIMIT,
        tmp_path / "classes.json",
        0,
    )
    used = json.loads((here / PRECISION_FILE).read_text())["precision_used"]
    assert used == ("mixed_bfloat16" if openvino_runs_bf16(cpu_flags()) else "float32")
