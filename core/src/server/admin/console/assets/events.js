// Events: the search form (its fields are the URL's query, so a search is a link) and its
// results, newest first, each linking to the event's page. Opening an event by its id works
// whatever the search can do.
import { get, ApiError } from './api.js';
import { h, show, announce, table, consoleUrl, state } from './dom.js';

const FIELDS = [
  ['workspace', 'Workspace'], ['vendor', 'Vendor'], ['type', 'Type (glob, e.g. message.*)'],
  ['sink', 'Sink'], ['q', 'Text: vendor event id, delivery id, sender, recipient'],
  ['since', 'Since (RFC 3339)'], ['until', 'Until (RFC 3339)'],
];
const STATUSES = ['', 'delivered', 'pending', 'retrying', 'dead'];

export async function events(params) {
  const field = ([name, label]) => h('label', {}, label,
    h('input', { name, value: params.get(name) || '', type: 'text', autocomplete: 'off' }));
  const status = h('label', {}, 'Status',
    h('select', { name: 'status' }, STATUSES.map((s) => h('option', { value: s, selected: params.get('status') === s }, s || 'any'))));
  const idInput = h('input', { id: 'event-id', name: 'id', type: 'text', autocomplete: 'off', required: true, pattern: '[0-9A-Za-z]{26}' });
  const results = h('section', { id: 'results', 'aria-labelledby': 'results-title' },
    h('h2', { id: 'results-title' }, 'Results'), h('p', {}, 'Searching…'));
  show(
    h('h1', {}, 'Events'),
    h('form', { class: 'search', method: 'get', action: '/console/events', role: 'search', 'aria-label': 'Search events' },
      FIELDS.slice(0, 4).map(field), status, FIELDS.slice(4).map(field),
      h('button', { type: 'submit' }, 'Search')),
    h('form', { class: 'actions', 'aria-label': 'Open an event by id', onsubmit: (e) => {
      e.preventDefault();
      window.location.assign(consoleUrl('events', idInput.value.trim()));
    } },
      h('label', { for: 'event-id' }, 'Open event by id'), idInput, h('button', { type: 'submit' }, 'Open')),
    results,
  );
  const query = new URLSearchParams(params);
  query.delete('id');
  try {
    const page = await get(`events?${query}`);
    render(results, page, query);
    announce(`${page.events.length} events found`);
  } catch (failure) {
    const why = failure instanceof ApiError && failure.code === 'search_unsupported'
      ? `Search is not available: ${failure.message}`
      : `Search failed: ${failure.message}`;
    results.replaceChildren(h('h2', { id: 'results-title' }, 'Results'), h('p', { class: 'error', role: 'alert' }, why));
  }
}

function render(results, page, query) {
  const columns = [{ label: 'Event' }, { label: 'Received' }, { label: 'Workspace' }, { label: 'Vendor' },
    { label: 'Type' }, { label: 'Vendor event id' }, { label: 'Sinks' }];
  const rows = page.events.map((e) => [
    h('a', { href: consoleUrl('events', e.id) }, e.id), e.received_at, e.workspace, e.vendor, e.type,
    e.vendor_event_id || '—',
    h('span', {}, (e.sinks || []).map(({ sink, status }) => h('span', { 'data-sink': sink }, `${sink}: `, state(status), ' '))),
  ]);
  const next = page.next && new URLSearchParams(query);
  if (next) next.set('after', page.next);
  results.replaceChildren(
    h('h2', { id: 'results-title' }, 'Results'),
    rows.length ? table('Events found, newest first', columns, rows) : h('p', {}, 'No event matches.'),
    next && h('p', {}, h('a', { href: `/console/events?${next}` }, 'Next page')),
  );
}
