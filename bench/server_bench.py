"""What the server does when a class opens every page: server-side first render of each page
and the server's memory, measured without any browser on the same cores.

A fresh Python process loads the embedded model (as a warm server has), then opens every page
once through Streamlit's AppTest, which runs the page script in this process exactly as a
session thread of `streamlit run` does: the time is the script run, the caches of that page
cold. RSS is read after each page with the pages' caches accumulating, and sampled every
0.1 s for the peak. Then thirty distinct 256-token prompts fill the shared trace cache to its
byte budget, the most a class's own prompts can add on top. The real-browser figures, which add Chromium's own work on the same two
cores, are in `app_bench`.
"""

from __future__ import annotations

from bench.common import Row, mb, median, note, run_child

TARGET_S, TARGET_MEDIAN_S, TARGET_RSS = 3.0, 1.5, 1.5e9
PROMPTS = 30  # distinct 256-token prompts that fill the trace cache after the tour

_RUN = """
import json, threading, time
from streamlit.testing.v1 import AppTest

def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024

peak = [0]
def sample():
    while True:
        peak[0] = max(peak[0], rss())
        time.sleep(0.1)
threading.Thread(target=sample, daemon=True).start()

from components import models as cm
from core.concepts import available_concepts
cm._embedded()
loaded = rss()
out = []
for c in available_concepts():
    at = AppTest.from_file('app.py', default_timeout=600).run()
    t0 = time.perf_counter()
    at.switch_page(c.page_file).run()
    seconds = time.perf_counter() - t0
    error = str(at.exception[0].message)[:120] if at.exception else ''
    out.append({'page': c.number, 'seconds': seconds, 'rss': rss(), 'error': error})
    print('PAGE', c.number, round(seconds, 2), rss() // 1000000, peak[0] // 1000000, flush=True)
tour_peak = peak[0]
# then the worst a class adds on top: the byte-budgeted cache filled with long prompts' traces
from components import memo
from core.runtime.models import EMBEDDED_ID
for i in range(N_PROMPTS):
    cm._trace(EMBEDDED_ID, f'Prompt {i}: ' + ' '.join(f'word{i * 97 + j}' for j in range(300)), 256)
full = {'rss': rss(), 'held': memo.STORE.total, 'budget': memo.STORE.budget, 'peak': peak[0]}
print('RESULT ' + json.dumps({'loaded': loaded, 'pages': out, 'peak': tour_peak, 'full': full}))
"""


def _run() -> dict:
    return run_child(["-c", _RUN.replace("N_PROMPTS", str(PROMPTS))], "RESULT ", "server bench")


def rows() -> list[Row]:
    note("server: every page's first render through AppTest in a fresh process")
    r = _run()
    pages = r["pages"]
    secs = [p["seconds"] for p in pages]
    slowest = max(pages, key=lambda p: p["seconds"])
    errors = [f"{p['page']:02d}: {p['error']}" for p in pages if p["error"]]
    after, full = pages[-1]["rss"], r["full"]
    worst_rss = max(p["rss"] for p in pages)
    ok_times = max(secs) < TARGET_S and median(secs) < TARGET_MEDIAN_S and not errors
    return [
        Row(
            f"Server-side first render of each of {len(pages)} pages (fresh session, warm "
            "model, page caches cold): median, slowest",
            f"{median(secs):.2f} s, {slowest['seconds']:.2f} s (page {slowest['page']:02d})",
            f"errors: {len(errors)}" + (f" ({'; '.join(errors)})" if errors else ""),
            "",
            "each < 3 s, median < 1.5 s, 0 errors",
            "yes" if ok_times else "NO",
        ),
        Row(
            "Server-side first render, every page (seconds)",
            ", ".join(f"{p['page']:02d}: {p['seconds']:.2f}" for p in pages),
            "",
        ),
        Row(
            "Server RSS after every page has been opened (embedded model loaded)",
            mb(after),
            f"model loaded, no page yet: {mb(r['loaded'])}; highest after a page: "
            f"{mb(worst_rss)}; peak sampled every 0.1 s: {mb(r['peak'])}",
            f"+{mb(after - r['loaded'])} for 25 pages",
            "< 1.5 GB after every page and at peak",
            "yes" if worst_rss < TARGET_RSS and r["peak"] < TARGET_RSS else "NO",
        ),
        Row(
            f"Then {PROMPTS} distinct 256-token prompts fill the shared trace cache (byte "
            f"budget {mb(full['budget'])}): server RSS after, and peak",
            f"{mb(full['rss'])}, peak {mb(full['peak'])}",
            f"the cache holds {mb(full['held'])}; after the tour: {mb(after)}",
            f"+{mb(full['rss'] - after)}",
            "< 1.5 GB",
            "yes" if full["peak"] < TARGET_RSS else "NO",
        ),
    ]


if __name__ == "__main__":
    from bench.common import table

    print(table(rows()))
