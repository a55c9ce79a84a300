// The console page: picks the view its URL names. Every view has its own URL, so a link
// can be pasted into an incident channel.
import { signOut } from './api.js';
import { h, show } from './dom.js';
import { overview } from './overview.js';
import { events } from './events.js';
import { event } from './event.js';
import { sink } from './sink.js';

document.getElementById('sign-out').addEventListener('click', signOut);

const parts = window.location.pathname.split('/').filter(Boolean).slice(1).map(decodeURIComponent);
const params = new URLSearchParams(window.location.search);

function current(nav) {
  const link = document.querySelector(`[data-nav="${nav}"]`);
  if (link) link.setAttribute('aria-current', 'page');
}

if (parts.length === 0) {
  current('overview');
  overview();
} else if (parts[0] === 'events' && parts.length === 1) {
  current('events');
  events(params);
} else if (parts[0] === 'events' && parts.length === 2) {
  current('events');
  event(parts[1]);
} else if (parts[0] === 'sinks' && parts.length === 3) {
  sink(parts[1], parts[2], params);
} else {
  show(h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '/console/' }, 'Back to the overview')));
}
