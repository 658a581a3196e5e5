// The page's logic: send the text as a packet or through a stream exchange with
// the gossiphttp wasm client, and show the frames' bytes (header vs payload).
import init, { Peer, encodeFrame } from '../pkg/gossiphttp.js';

const $ = (id) => document.getElementById(id);
const ui = {
  url: $('url'), certLink: $('cert-link'), text: $('text'), send: $('send'),
  exchange: $('exchange'), status: $('status'), log: $('log'),
};
const MAX_SHOWN = 256; // bytes of hex shown per frame before eliding
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: false });

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
const hexCompact = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

function setStatus(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', isError);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** One row of bytes: the first `headerLen` bytes as header, the rest as payload. */
function bytesRow(bytes, headerLen) {
  const row = el('div', 'frame');
  if (headerLen > 0) row.append(el('span', 'hdr', hex(bytes.subarray(0, headerLen))), ' ');
  const payload = bytes.subarray(headerLen);
  row.append(el('span', 'pay', payload.length ? hex(payload.subarray(0, MAX_SHOWN)) : '(empty payload)'));
  if (payload.length > MAX_SHOWN) row.append(el('span', 'elided', ` … ${payload.length - MAX_SHOWN} more bytes`));
  return row;
}

function addEntry(kind, title, meta) {
  const li = el('li', `entry ${kind}`);
  li.dataset.kind = kind;
  const t = el('div', 'title');
  t.append(el('span', '', title), el('span', 'meta', meta ?? new Date().toLocaleTimeString()));
  li.append(t);
  ui.log.append(li);
  return li;
}

/** Shows a frame this page sends: header and payload as encodeFrame writes them. */
function showFrame(li, payload) {
  const frame = encodeFrame(payload);
  const headerLen = frame.length - payload.length;
  const row = bytesRow(frame, headerLen);
  row.dataset.frameHex = hexCompact(frame);
  row.dataset.headerLen = String(headerLen);
  li.append(row);
}

function showError(err) {
  const code = err?.code ? `${err.code}${err.status ? ` ${err.status}` : ''}` : 'error';
  const li = addEntry('error', `✕ ${code}`);
  let msg = String(err?.message ?? err);
  if (err?.code === 'network') {
    msg += `\nIs the node running, does it allow this page's origin (${location.origin}) in its CORS list, and did you accept its certificate?`;
  }
  li.append(el('div', 'text', msg));
  setStatus(`failed: ${code}`, true);
}

function peer() {
  return new Peer(ui.url.value.trim(), { timeoutMs: 10_000 });
}

/** Logs the text about to be sent (an entry of `kind` titled `title`) with the frame it goes in. */
function logOutgoing(kind, title) {
  const payload = enc.encode(ui.text.value);
  const li = addEntry(kind, title);
  li.dataset.payloadHex = hexCompact(payload);
  li.append(el('div', 'text', ui.text.value || '(empty)'));
  showFrame(li, payload);
  return { li, payload };
}

async function sendPacket() {
  const { li, payload } = logOutgoing('packet', '→ packet  POST /message');
  setStatus('sending…');
  await peer().send(payload);
  li.querySelector('.meta').textContent = `delivered · ${payload.length} bytes · ${new Date().toLocaleTimeString()}`;
  li.dataset.done = '1';
  setStatus('packet delivered');
}

async function exchange() {
  const { payload } = logOutgoing('sent', '→ stream  POST /stream');
  setStatus('exchanging…');
  const ex = await peer().exchange(payload);
  const back = addEntry('received', '← from the node  (stream bytes, unwrapped from its frames)');
  const chunks = [];
  for await (const chunk of ex) {
    chunks.push(chunk);
    // Stream frames carry pieces of one byte pipe: each piece as it came out of its frame.
    back.append(bytesRow(chunk, 0));
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  back.dataset.payloadHex = hexCompact(all);
  back.querySelector('.meta').textContent = `${all.length} bytes in ${chunks.length} piece(s) · ${new Date().toLocaleTimeString()}`;
  back.insertBefore(el('div', 'text', all.length ? dec.decode(all) : '(nothing)'), back.children[1] ?? null);
  back.dataset.done = '1';
  setStatus(`stream closed: ${all.length} bytes back`);
}

function guard(fn) {
  return async () => {
    ui.send.disabled = ui.exchange.disabled = true;
    try {
      await fn();
    } catch (e) {
      showError(e);
    } finally {
      ui.send.disabled = ui.exchange.disabled = false;
    }
  };
}

ui.url.addEventListener('input', () => {
  ui.certLink.href = ui.url.value.trim();
});
ui.send.addEventListener('click', guard(sendPacket));
ui.exchange.addEventListener('click', guard(exchange));

try {
  await init();
  ui.send.disabled = ui.exchange.disabled = false;
  setStatus('ready');
  document.body.dataset.ready = '1';
} catch (e) {
  setStatus(`could not load the wasm module: ${e.message}`, true);
  document.body.dataset.ready = 'error';
}
