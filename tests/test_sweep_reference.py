"""--resume proven by counting: a resumed sweep measures only the combinations the file lacks, and
the finished rows stay on disk byte for byte (measured latencies never repeat, so a sweep that
measured them again could not write the same bytes)."""

import pandas as pd

from attncli.measure import oom

MEASURED = ["-p", "micro", "--mode", "prefill", "--measure", "--device", "cpu", "--min-time", "0"]


def count_measurements(monkeypatch):
    measured = []
    real = oom.measure_or_oom

    def counting(spec, preset, shape, settings, **kw):
        measured.append((spec.label, shape.mode, shape.seq_len, shape.batch))
        return real(spec, preset, shape, settings, **kw)

    monkeypatch.setattr(oom, "measure_or_oom", counting)
    return measured


def test_resume_measures_only_the_missing_rows_and_keeps_the_finished_bytes(cli, tmp_path, monkeypatch):
    measured = count_measurements(monkeypatch)
    csv = tmp_path / "m.csv"
    assert cli("sweep", "mha", "-s", "16", *MEASURED, "--csv", csv).code == 0
    assert measured == [("mha", "prefill", 16, 1)]
    first = csv.read_bytes()
    measured.clear()
    r = cli("sweep", "mha", "mqa", "-s", "16,32", *MEASURED, "--csv", csv, "--resume")
    assert r.code == 0, r.err
    # 2 variants × 2 lengths = 4 combinations; the file held 1 of them: 3 are measured, each once.
    assert sorted(measured) == [("mha", "prefill", 32, 1), ("mqa", "prefill", 16, 1), ("mqa", "prefill", 32, 1)]
    after = csv.read_bytes()
    assert after.startswith(first)  # the finished rows untouched, the new ones appended
    df = pd.read_csv(csv)
    assert len(df) == 4 and not df.duplicated(["label", "mode", "seq_len", "batch"]).any()
    measured.clear()
    assert cli("sweep", "mha", "mqa", "-s", "16,32", *MEASURED, "--csv", csv, "--resume").code == 0
    assert measured == [] and csv.read_bytes() == after  # nothing left to run: nothing run, nothing written


def test_resume_of_an_analytic_sweep_appends_only_the_missing_rows(cli, tmp_path):
    csv = tmp_path / "a.csv"
    assert cli("sweep", "mha", "-s", "128,256", "--csv", csv).code == 0
    first = csv.read_bytes()
    assert cli("sweep", "mha", "-s", "128:1024", "--csv", csv, "--resume").code == 0
    after = csv.read_bytes()
    assert after.startswith(first)
    new = after[len(first):].decode().splitlines()
    assert len(new) == 2 * 2  # seq 512 and 1024, prefill and decode: only those rows were added
    assert all(",512," in line or ",1024," in line for line in new)
