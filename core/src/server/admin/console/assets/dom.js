// Building the page from data: elements and text nodes only, never markup from strings, so
// nothing an event carries can become script.

/** An element with attributes (`on*` as listeners) and children (strings become text). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces what `main` shows and moves focus to its heading for screen readers. */
export function show(...children) {
  const main = document.getElementById('main');
  main.replaceChildren();
  append(main, children);
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

/** Says something in the polite live region (refreshes, results of actions). */
export function announce(text) {
  document.getElementById('status').textContent = text;
}

/** A table with a caption, header cells and rows of cells (`{num: true}` right-aligns). */
export function table(caption, columns, rows) {
  return h('div', { class: 'scroll' },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, i) =>
        h('td', { class: columns[i].num ? 'num' : null }, cell)))))));
}

/** The console URL of a path under it, each part escaped. */
export function consoleUrl(...parts) {
  return '/console/' + parts.map(encodeURIComponent).join('/');
}

/** A state word, styled by its kind. */
export function state(word) {
  return h('span', { class: `state state-${word}` }, word);
}

/** Seconds as a short duration. */
export function ago(seconds) {
  if (!seconds) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
