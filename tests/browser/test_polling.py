"""The dashboard's polling (`repeat` in static/js/ui.js), in a real browser: one tick at a time,
and a refresh asked for while a tick is on its way runs another tick after it, so an answer
read before a change (an upload, a submit) never renders over one read after it."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.support.servers import Server

SCRIPT = """
async () => {
  const { repeat } = await import("/static/js/ui.js");
  const log = [];
  let release = [];
  let ticks = 0;
  const poll = repeat(async () => {
    const n = ++ticks;
    log.push(`start ${n}`);
    await new Promise((done) => release.push(done));
    log.push(`end ${n}`);
    return 0;  // (no next tick by timer)
  });
  const first = poll.now();
  const second = poll.now();  // asked for while tick 1 is on its way
  const third = poll.now();
  await new Promise((r) => setTimeout(r, 20));
  release.shift()();  // tick 1 ends
  await new Promise((r) => setTimeout(r, 20));
  const before = [...log];
  release.shift()();  // tick 2 ends
  const all = Promise.all([first, second, third]).then(() => "all done");
  const outcome = await Promise.race([all, new Promise((r) => setTimeout(() => r("stuck"), 1000))]);
  while (release.length) release.shift()();  // (whatever else started)
  return { before, log, ticks, outcome };
}
"""


def test_a_refresh_asked_for_during_a_tick_runs_one_more_tick_after_it(page: Page, dashboard: Server) -> None:
    page.goto(f"{dashboard.url}/static/loadbay.css")  # (any page of the server: the module's origin)
    seen = page.evaluate(SCRIPT)
    assert seen["before"] == ["start 1", "end 1", "start 2"]  # never two at once
    assert seen["log"] == ["start 1", "end 1", "start 2", "end 2"]
    assert seen["ticks"] == 2  # the two asked for during tick 1 make one more, awaited by both
    assert seen["outcome"] == "all done"
