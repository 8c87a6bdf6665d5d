"""The CPU description that provenance records and the benchmarks print."""

from doubledescent import provenance

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw
power management:

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw
"""


def test_cpu_names_model_cores_and_vector_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert provenance.cpu(path) == "AMD EPYC 7B13, 2 cores, AVX2 AVX-512"


def test_cpu_without_avx_flags_or_proc(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.replace(" avx2", "").replace(" avx512f", ""))
    assert provenance.cpu(path) == "AMD EPYC 7B13, 2 cores"
    assert provenance.cpu(tmp_path / "absent")  # the platform's name, never an error
