// Overview: every workspace's sinks with their rate, queue, oldest queued event, state and
// dead letters, refreshed every few seconds. Rates are the change in the server's attempt
// counters between two refreshes, so the first refresh has none yet.
import { get } from './api.js';
import { h, show, announce, table, consoleUrl, state, ago } from './dom.js';

const EVERY_MS = 5000;

export function overview() {
  show(
    h('h1', {}, 'Overview'),
    h('p', { class: 'note' }, `Rates are attempts per second between refreshes (every ${EVERY_MS / 1000} s); “waiting”: queued with no attempt meanwhile (backing off or rate limited).`),
    h('div', { id: 'sinks' }, h('p', {}, 'Loading…')),
  );
  let previous = null;
  const refresh = async () => {
    try {
      const now = performance.now();
      const { sinks } = await get('queues');
      const rates = previous && rateOf(previous, { at: now, sinks });
      previous = { at: now, sinks };
      render(sinks, rates);
      announce(`Updated at ${new Date().toLocaleTimeString()}`);
    } catch (failure) {
      announce(`Refresh failed: ${failure.message}`);
    }
  };
  refresh();
  setInterval(refresh, EVERY_MS);
}

function key(s) {
  return `${s.workspace}/${s.sink}`;
}

/** Per sink, attempts per second since the previous refresh, by outcome. */
function rateOf(before, after) {
  const seconds = (after.at - before.at) / 1000;
  const earlier = new Map(before.sinks.map((s) => [key(s), s.attempts || {}]));
  const rates = new Map();
  for (const s of after.sinks) {
    const then = earlier.get(key(s)) || {};
    const per = (outcome) => Math.max(0, ((s.attempts || {})[outcome] || 0) - (then[outcome] || 0)) / seconds;
    rates.set(key(s), { delivered: per('delivered'), failed: per('failed') + per('dead') });
  }
  return rates;
}

/** The word for a sink's state, from its counters and its rates. */
function stateOf(s, rate) {
  if (s.orphaned) return 'orphaned';
  if (rate && rate.failed > 0) return rate.delivered > 0 ? 'retrying' : 'failing';
  if (rate && rate.delivered > 0) return 'delivering';
  if (s.queued > 0) return rate ? 'waiting' : 'queued';
  return 'idle';
}

function render(sinks, rates) {
  const byWorkspace = new Map();
  for (const s of sinks) {
    if (!byWorkspace.has(s.workspace)) byWorkspace.set(s.workspace, []);
    byWorkspace.get(s.workspace).push(s);
  }
  const columns = [
    { label: 'Sink' }, { label: 'State' }, { label: 'Delivered/s', num: true },
    { label: 'Failed/s', num: true }, { label: 'Queued', num: true }, { label: 'In flight', num: true },
    { label: 'Oldest queued', num: true }, { label: 'Dead letters', num: true },
  ];
  const sections = [...byWorkspace].map(([workspace, list]) => h('section', { 'aria-labelledby': `ws-${workspace}` },
    h('h2', { id: `ws-${workspace}` }, `Workspace ${workspace}`),
    table(`Sinks of ${workspace}`, columns, list.map((s) => {
      const rate = rates && rates.get(key(s));
      const link = consoleUrl('sinks', s.workspace, s.sink);
      return [
        h('a', { href: link }, s.sink),
        state(stateOf(s, rate)),
        rate ? rate.delivered.toFixed(1) : '—',
        rate ? rate.failed.toFixed(1) : '—',
        String(s.queued),
        String(s.in_flight),
        ago(s.oldest_queued_seconds),
        s.dead > 0 ? h('a', { href: link, 'aria-label': `${s.dead} dead letters of ${s.sink}` }, String(s.dead)) : '0',
      ];
    }))));
  // A refresh keeps keyboard focus on the link the reader was on.
  const focused = document.activeElement && document.activeElement.closest('#sinks a');
  const where = focused && focused.getAttribute('href') + focused.textContent;
  const holder = document.getElementById('sinks');
  holder.replaceChildren(...(sections.length ? sections : [h('p', {}, 'No sinks are configured.')]));
  if (where) {
    const again = [...holder.querySelectorAll('a')].find((a) => a.getAttribute('href') + a.textContent === where);
    if (again) again.focus();
  }
}
