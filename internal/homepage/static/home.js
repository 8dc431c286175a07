// home.js is the local runner's home page, written to be copied: a web
// page that uses the functions' public HTTP API and nothing else.
//
//   GET  /Callback      with Accept: application/json, who is connected
//   GET  /Authorize     sends the browser to Google's consent screen
//   GET  /ListMessages  one page of the inbox
//   POST /Disconnect    revokes the authorization and ends the session
//
// The page is served from the same origin as the functions, as yours should
// be (put the functions behind your site's own domain). The session is an
// HttpOnly cookie of that origin: script never reads it, the browser sends
// it. No framework and nothing inline: the page runs under a
// Content-Security-Policy that allows script, style and fetch from its own
// origin only, and it writes text with textContent, never as HTML.
'use strict';

const api = {
  callback: '/Callback',
  listMessages: '/ListMessages',
  disconnect: '/Disconnect',
};
const pageSize = 25;

const $ = (id) => document.getElementById(id);

// Pattern 1: credentials. Every call sends the session cookie with
// credentials: 'same-origin', and asks for JSON with Accept:
// application/json, so that the functions answer errors as JSON (with a
// status, an error code and, on 401, an authorization_url) rather than with
// a redirect or a page meant for a person.
async function callAPI(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  const body = await response.json().catch(() => ({}));
  return { response, body };
}

// Pattern 2: follow authorization_url on 401. The functions answer 401 when
// the user has not connected Gmail (authorization_required) or when Google
// no longer honours the grant (reauthorization_required). authorization_url
// is where to send the user: Authorize, with the account hint and the
// consent prompt it needs. return_to brings the user back to this page.
function followAuthorization(body) {
  const url = new URL(body.authorization_url, location.href);
  url.searchParams.set('return_to', location.pathname);
  location.assign(url.href);
}

// The connection: Callback answers a JSON client with the session's account,
// or 401 when there is none.
async function showStatus() {
  const { response, body } = await callAPI(api.callback);
  if (response.ok && body.status === 'connected') {
    showConnected(body.email);
    await loadPage();
  } else if (response.status === 401) {
    showConnected('');
  } else {
    showError(response, body, showStatus);
  }
}

function showConnected(email) {
  $('status').textContent = email ? `Connected as ${email}` : 'Not connected';
  $('connect').hidden = Boolean(email);
  $('disconnect').hidden = !email;
  $('inbox').hidden = !email;
  if (!email) {
    $('rows').replaceChildren();
  }
}

// Pattern 3: paging with nextPageToken. Each answer's nextPageToken asks for
// the page after it; none means this is the last page. Page tokens only go
// forward, so to go back the page keeps the tokens it has used: tokens[i]
// is the pageToken of page i ('' for the first). A new search starts over.
const view = { q: '', tokens: [''], next: '' };

async function loadPage() {
  const params = new URLSearchParams({ format: 'metadata', maxResults: String(pageSize) });
  if (view.q) {
    params.set('q', view.q);
  }
  const token = view.tokens[view.tokens.length - 1];
  if (token) {
    params.set('pageToken', token);
  }
  setBusy(true);
  try {
    const { response, body } = await callAPI(`${api.listMessages}?${params}`);
    if (response.status === 401 && body.authorization_url) {
      followAuthorization(body);
    } else if (!response.ok) {
      showError(response, body, loadPage);
    } else {
      hideError();
      showMessages(body);
    }
  } finally {
    setBusy(false);
  }
}

function showMessages(page) {
  const messages = page.messages || [];
  const rows = messages.map(messageRow);
  if (rows.length === 0) {
    rows.push(noteRow(view.q ? 'No message matches this search.' : 'No messages.'));
  }
  $('rows').replaceChildren(...rows);
  view.next = page.nextPageToken || '';
  $('summary').textContent = `Page ${view.tokens.length} · about ${page.resultSizeEstimate || 0} messages`;
}

function setBusy(busy) {
  $('messages').setAttribute('aria-busy', String(busy));
  $('next').disabled = busy || !view.next;
  $('prev').disabled = busy || view.tokens.length < 2;
}

function messageRow(m) {
  const tr = document.createElement('tr');
  tr.dataset.id = m.id;
  for (const text of [senderName(m.from), m.subject || '(no subject)', shortDate(m.date), decodeEntities(m.snippet)]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  tr.cells[0].title = m.from || '';
  return tr;
}

function noteRow(text) {
  const tr = document.createElement('tr');
  const td = document.createElement('td');
  td.colSpan = 4;
  td.textContent = text;
  tr.append(td);
  return tr;
}

// "Alice Martin <alice@example.org>" shows as Alice Martin.
function senderName(from = '') {
  const name = from.replace(/<[^>]*>/, '').replace(/"/g, '').trim();
  return name || from;
}

// The Date header, as the time for today's mail, else the date.
function shortDate(header) {
  const d = new Date(header);
  if (!header || Number.isNaN(d.getTime())) {
    return header || '';
  }
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return d.toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' });
  }
  const options = { month: 'short', day: 'numeric' };
  if (d.getFullYear() !== now.getFullYear()) {
    options.year = 'numeric';
  }
  return d.toLocaleDateString(undefined, options);
}

// Gmail's snippets are HTML-escaped ("It&#39;s"). They are text: decode the
// entities as text, never by parsing them as HTML.
function decodeEntities(s = '') {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (entity, code) => {
    if (code[0] !== '#') {
      return named[code.toLowerCase()] ?? entity;
    }
    const n = code[1] === 'x' || code[1] === 'X' ? parseInt(code.slice(2), 16) : parseInt(code.slice(1), 10);
    return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : entity;
  });
}

// Pattern 4: disconnect with a same-origin POST. Disconnect refuses
// cross-site requests (the browser's Sec-Fetch-Site and Origin headers say
// where a request comes from), so no other site can disconnect your users.
// A fetch from your own page is same-origin: no token or form is needed.
async function disconnect() {
  const { response, body } = await callAPI(api.disconnect, { method: 'POST' });
  if (!response.ok) {
    showError(response, body, disconnect);
    return;
  }
  hideError();
  if (body.revocation_error) {
    showNotice(body.revocation_error);
  }
  view.q = '';
  view.tokens = [''];
  $('q').value = '';
  showConnected('');
}

let retryAction = null;

// Errors. 429 (Gmail's per-user quota) and 503 (a dependency briefly away)
// say in Retry-After how many seconds to wait: say so, and offer to try
// again once that time has passed.
function showError(response, body, retry) {
  let text = body.error_description || body.error || `The functions answered ${response.status}.`;
  let wait = 0;
  if (response.status === 429 || response.status === 503) {
    wait = retryAfterSeconds(response.headers.get('Retry-After'));
    const what = response.status === 429 ? 'Gmail is busy' : 'A service is briefly unavailable';
    text = wait > 0 ? `${what}: try again in ${wait} s.` : `${what}: try again shortly.`;
  }
  showNotice(text);
  retryAction = retry;
  const button = $('retry');
  button.hidden = false;
  button.disabled = wait > 0;
  if (wait > 0) {
    setTimeout(() => { button.disabled = false; }, wait * 1000);
  }
}

// Retry-After is a number of seconds or an HTTP date.
function retryAfterSeconds(value) {
  if (!value) {
    return 0;
  }
  const seconds = /^\d+$/.test(value) ? Number(value) : Math.ceil((Date.parse(value) - Date.now()) / 1000);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
}

function showNotice(text) {
  $('error-text').textContent = text;
  $('retry').hidden = true;
  $('error').hidden = false;
}

function hideError() {
  $('error').hidden = true;
}

// run calls an action and shows a failure to reach the functions at all.
async function run(action) {
  try {
    await action();
  } catch (err) {
    showNotice(`The functions did not answer: ${err.message}`);
  }
}

$('search').addEventListener('submit', (event) => {
  event.preventDefault();
  view.q = $('q').value.trim();
  view.tokens = [''];
  run(loadPage);
});
$('next').addEventListener('click', () => {
  view.tokens.push(view.next);
  run(loadPage);
});
$('prev').addEventListener('click', () => {
  view.tokens.pop();
  run(loadPage);
});
$('disconnect').addEventListener('click', () => run(disconnect));
$('retry').addEventListener('click', () => {
  hideError();
  run(retryAction);
});

run(showStatus);
