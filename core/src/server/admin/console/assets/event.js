// One event: what the vendor sent (the body; the store keeps no request headers), the
// envelope, and per sink every attempt, with "deliver again" to that sink. Keys that name
// secrets or signatures are masked in what is shown.
import { get, send } from './api.js';
import { h, show, announce, table, consoleUrl, state } from './dom.js';

const SECRET_KEY = /secret|signature|token|password|passwd|api[-_]?key|authorization|credential/i;
const MASK = '•••• masked';

/** A copy of a JSON value with the values of secret-looking keys masked. */
function masked(value) {
  if (Array.isArray(value)) return value.map(masked);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) ? MASK : masked(v)]));
  }
  return value;
}

/** The trace id of a W3C `traceparent` (version-traceid-spanid-flags). */
function traceId(traceparent) {
  const parts = (traceparent || '').split('-');
  return parts.length === 4 ? parts[1] : null;
}

export async function event(id) {
  show(h('h1', {}, `Event ${id}`), h('p', {}, 'Loading…'));
  let found;
  try {
    found = await get(`events/${encodeURIComponent(id)}`);
  } catch (failure) {
    show(h('h1', {}, `Event ${id}`), h('p', { class: 'error', role: 'alert' }, failure.message));
    return;
  }
  const e = found.event;
  const { raw, ...envelope } = e;
  const trace = traceId(e.traceparent);
  const facts = [
    ['Workspace', e.workspace], ['Vendor', e.vendor], ['Type', e.type], ['Vendor type', e.vendor_type],
    ['Vendor event id', e.vendor_event_id || '—'], ['Received', e.received_at], ['Occurred', e.occurred_at || '—'],
    ['Dedupe key', `${e.dedupe_key} (${e.dedupe_basis})`],
    ['Trace id', trace || 'not traced (server.telemetry is off)'],
  ];
  show(
    h('h1', {}, `Event ${id}`),
    h('dl', { class: 'facts', id: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('section', { 'aria-labelledby': 'deliveries' },
      h('h2', { id: 'deliveries' }, 'Deliveries'),
      h('p', { class: 'note' }, 'Each attempt’s outcome names the HTTP status or the error; the store does not keep response bodies.'),
      found.deliveries.length ? found.deliveries.map((d) => delivery(id, e.workspace, d)) : h('p', {}, 'Routed to no sink (unrouted).')),
    h('section', { 'aria-labelledby': 'request' },
      h('h2', { id: 'request' }, 'Request body'),
      h('p', { class: 'note' }, 'As the vendor sent it (the envelope’s raw), re-indented, secret-looking keys masked. The vendor’s request headers, its signature among them, are not kept by the store.'),
      h('pre', { tabindex: '0', 'aria-label': 'Request body' }, JSON.stringify(masked(raw), null, 2))),
    h('section', { 'aria-labelledby': 'envelope' },
      h('h2', { id: 'envelope' }, 'Envelope'),
      h('pre', { tabindex: '0', 'aria-label': 'Envelope without the body' }, JSON.stringify(masked(envelope), null, 2))),
  );
}

function delivery(id, workspace, d) {
  const attempts = d.attempts || [];
  const again = h('button', { type: 'button', disabled: d.status === 'queued', onclick: async () => {
    again.disabled = true;
    try {
      await send('POST', `events/${encodeURIComponent(id)}/sinks/${encodeURIComponent(d.sink)}/redeliver`);
      announce(`Event queued again for ${d.sink}`);
      await event(id);
    } catch (failure) {
      announce(`Deliver again to ${d.sink} failed: ${failure.message}`);
      again.disabled = false;
    }
  } }, `Deliver again to ${d.sink}`);
  const when = d.delivered_at ? `delivered at ${d.delivered_at}` : d.dead_at ? `dead since ${d.dead_at}: ${d.reason}` :
    d.next_attempt_at ? `next attempt at ${d.next_attempt_at}` : '';
  return h('div', { class: 'card', 'data-sink': d.sink },
    h('h3', {}, h('a', { href: consoleUrl('sinks', workspace, d.sink) }, d.sink), ' ', state(d.status)),
    when && h('p', {}, when),
    attempts.length
      ? table(`Attempts to ${d.sink}`, [{ label: 'Time' }, { label: 'Outcome' }], attempts.map((a) => [a.at, a.outcome]))
      : h('p', {}, 'No attempt yet.'),
    h('div', { class: 'actions' }, again));
}

