// The sign-in form: the token goes to /console/session, which answers with the session
// cookie; the page then loads again, now as the console view its URL names.
const form = document.getElementById('sign-in');
const problem = document.getElementById('sign-in-error');

form.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  problem.textContent = '';
  const token = form.elements.token.value;
  try {
    const answer = await fetch('/console/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (answer.ok) {
      window.location.reload();
      return;
    }
    const body = await answer.json().catch(() => ({}));
    problem.textContent = body.message || `Sign-in failed (HTTP ${answer.status}).`;
  } catch (failure) {
    problem.textContent = `The server did not answer: ${failure.message}`;
  }
  form.elements.token.focus();
});
