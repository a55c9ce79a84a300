// One sink: its counters and its dead letters, a page at a time, with replay and delete,
// one or all.
import { get, send } from './api.js';
import { h, show, announce, table, consoleUrl, ago } from './dom.js';

const PAGE = 50;

export async function sink(workspace, name, params) {
  const base = `workspaces/${encodeURIComponent(workspace)}/sinks/${encodeURIComponent(name)}/dead-letters`;
  const title = `Sink ${name} of ${workspace}`;
  const after = params.get('after');
  let page;
  let counters;
  try {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (after) query.set('after', after);
    [page, { sinks: counters }] = await Promise.all([get(`${base}?${query}`), get('queues')]);
  } catch (failure) {
    show(h('h1', {}, title), h('p', { class: 'error', role: 'alert' }, failure.message));
    return;
  }
  const mine = counters.find((s) => s.workspace === workspace && s.sink === name) || {};
  // `label` is what the button says; `spoken`, what a screen reader calls it.
  const act = ({ label, spoken, danger }, method, path, done, confirmText) => h('button', {
    type: 'button', class: danger ? 'danger' : null, 'aria-label': spoken || null, onclick: async (clicked) => {
      if (confirmText && !window.confirm(confirmText)) return;
      clicked.currentTarget.disabled = true;
      try {
        const answer = await send(method, path);
        announce(done(answer));
      } catch (failure) {
        announce(`${spoken || label} failed: ${failure.message}`);
      }
      await sink(workspace, name, params);
    },
  }, label);
  const rows = page.dead_letters.map((d) => {
    const id = d.event_id;
    const envelope = d.envelope || {};
    return [
      h('a', { href: consoleUrl('events', id) }, id),
      envelope.type || '—',
      d.dead_at || '—',
      d.reason || (d.unreadable ? 'unreadable record' : '—'),
      String((d.attempts || []).length),
      h('span', { class: 'actions' },
        act({ label: 'Replay', spoken: `Replay ${id}` }, 'POST', `${base}/${id}/replay`, () => `Replayed ${id}`),
        act({ label: 'Delete', spoken: `Delete ${id}`, danger: true }, 'DELETE', `${base}/${id}`, () => `Deleted ${id}`,
          `Delete the dead letter ${id} for good?`)),
    ];
  });
  const next = page.next && `${consoleUrl('sinks', workspace, name)}?after=${encodeURIComponent(page.next)}`;
  show(
    h('h1', {}, title),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Queued'), h('dd', {}, String(mine.queued ?? '—')),
      h('dt', {}, 'In flight'), h('dd', {}, String(mine.in_flight ?? '—')),
      h('dt', {}, 'Oldest queued'), h('dd', {}, ago(mine.oldest_queued_seconds)),
      h('dt', {}, 'Dead letters'), h('dd', {}, String(page.total))),
    h('section', { 'aria-labelledby': 'dead' },
      h('h2', { id: 'dead' }, 'Dead letters'),
      page.total > 0 && h('div', { class: 'actions' },
        act({ label: 'Replay all' }, 'POST', `${base}/replay`, (a) => `Replayed ${a.replayed}`),
        act({ label: 'Delete all', danger: true }, 'DELETE', base, (a) => `Deleted ${a.deleted}`,
          `Delete all ${page.total} dead letters of ${name} for good?`)),
      rows.length
        ? table(`Dead letters of ${name}, oldest first`, [{ label: 'Event' }, { label: 'Type' }, { label: 'Dead since' },
          { label: 'Reason' }, { label: 'Attempts', num: true }, { label: 'Actions' }], rows)
        : h('p', {}, 'No dead letters.'),
      next && h('p', {}, h('a', { href: next }, 'Next page'))),
  );
}
