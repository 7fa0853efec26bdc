"""A stage's stderr lines are logged at the level of what they say, not all as errors or all as info."""

import logging

from flows.stage_output import StderrLevels

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR


def _levels(lines: list[str]) -> list[int]:
    levels = StderrLevels("features")
    return [levels.level(line) for line in lines]


def test_tensorflow_and_logging_lines_keep_their_own_level():
    lines = {
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR": DEBUG,
        "I0000 00:00:1733241600.1 4242 cpu_feature_guard.cc:210] This TensorFlow binary is optimized": DEBUG,
        "W0000 00:00:1733241600.1 4242 gpu_device.cc:2344] Cannot dlopen some GPU libraries": WARNING,
        # logged at E by TensorFlow on every CPU host, and the stage carries on: not an error of the stage
        "E0000 00:00:1733241600.1 4242 cuda_executor.cc:1228] failed call to cuInit: UNKNOWN ERROR (303)": WARNING,
        # train's one E line (flows/stage_output.py says why it is harmless), as TensorFlow 2.21.0 writes it
        "E0000 00:00:1796331550.643104   27077 node_def_util.cc:682] NodeDef mentions attribute "
        "use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; ...>": DEBUG,
        "E0000 00:00:1733241600.1 4242 meta_optimizer.cc:967] NodeDef mentions attribute other_attribute which is "
        "not in the op definition": WARNING,
        "F0000 00:00:1733241600.1 4242 check.cc:1] Check failed: ok": ERROR,
        "INFO tasks.features: 120 of 2300 photos, 40/s, 55 s left": INFO,
        "WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built.": WARNING,
        "ERROR: failed to reproduce 'features': ...": ERROR,
        "error: features: features.weights is '/nowhere/vgg16.h5', which is neither imagenet, none, nor a file": ERROR,
        "Downloading data from somewhere": INFO,
    }
    assert _levels(list(lines)) == list(lines.values())


def test_a_traceback_is_an_error_to_its_last_line_and_a_warning_keeps_its_source_line():
    lines = [
        "/venv/keras/src/trainers/trainer.py:12: UserWarning: The structure of `inputs` does not match",
        "  warnings.warn(",
        "Traceback (most recent call last):",
        '  File "/work/tasks/features.py", line 3, in <module>',
        "    main()",
        "ValueError: bad",
        "afterwards",
    ]
    assert _levels(lines) == [WARNING, WARNING, ERROR, ERROR, ERROR, ERROR, INFO]
