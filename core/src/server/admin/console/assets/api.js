// The operator API as the console reaches it: /console/api/... with the session cookie, and
// for anything that changes state the session's CSRF token in a header.

let csrf = null;

/** A refusal from the API, with its stable code and its message for people. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function answer(response) {
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && body.error === 'signed_out') {
    // The session ended (expired, or the server restarted): the sign-in page, same URL.
    window.location.reload();
  }
  if (!response.ok) throw new ApiError(response.status, body.error, body.message);
  return body;
}

async function csrfToken() {
  if (csrf === null) {
    csrf = (await answer(await fetch('/console/session'))).csrf;
  }
  return csrf;
}

/** GET /admin/{path}. */
export async function get(path) {
  return answer(await fetch(`/console/api/${path}`, { headers: { accept: 'application/json' } }));
}

/** POST or DELETE /admin/{path}. */
export async function send(method, path) {
  const headers = { accept: 'application/json', 'x-switchyard-csrf': await csrfToken() };
  return answer(await fetch(`/console/api/${path}`, { method, headers }));
}

export async function signOut() {
  const headers = { 'x-switchyard-csrf': await csrfToken() };
  await fetch('/console/session', { method: 'DELETE', headers });
  window.location.assign('/console/');
}
