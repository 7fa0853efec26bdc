"""The run facts name the machine closely enough to say whether another one should reproduce its bytes."""

import json

from tasks.lineage.run_context import CONV_SIMD, cpu_flags, cpu_simd, run_context


def test_run_facts_record_the_cpus_conv_simd_extensions_as_proc_cpuinfo_lists_them():
    facts = run_context()
    simd = facts["hardware"]["cpu_simd"]
    assert simd == [name for name in CONV_SIMD if name in cpu_flags()]
    assert simd == cpu_simd()
    json.dumps(facts)  # written as JSON beside the model and the submission


def test_cpu_flags_are_read_from_proc_cpuinfo_on_linux():
    flags = cpu_flags()
    with open("/proc/cpuinfo") as cpuinfo:
        listed = next(line for line in cpuinfo if line.startswith("flags")).split(":", 1)[1].split()
    assert flags == set(listed)
    assert "sse2" in flags  # every x86-64 CPU has it
