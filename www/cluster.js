// The cluster page. Two sources, one view:
// - served by a node (the default): polls its /api/v1/members, /api/v1/events
//   and /api/v1/shards;
// - given ?url=https://node:port (served beside the npm package, scripts/www.sh):
//   asks that node with the package's members() and measures the key space with
//   lookup(), diffing successive answers for the timeline.
// Plain DOM, no build step, nothing fetched from elsewhere.

// The node measures the key space with the string keys "0" .. "9999"; so does the
// page in URL mode, so both show the same split for the same members.
const URL_SAMPLE_KEYS = 10000;
const TIMELINE_SHOWN = 200;
const PALETTE = ['#4f7cff', '#22b07d', '#f2a93b', '#e5566e', '#9b6bff', '#17a2b8', '#d96fd0', '#8bbf3d', '#ff8a4c', '#7d8bd6'];
const STATE_ICON = { alive: '●', suspect: '◐', dead: '✕', left: '↩' };
const EVENT_ICON = { joined: '+', alive: '●', suspect: '◐', dead: '✕', left: '↩', ckit: '◆', removed: '−' };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else if (k.startsWith('data-')) e.dataset[k.slice(5).replace(/-(\w)/g, (_, c) => c.toUpperCase())] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

const svgEl = (tag, attrs = {}) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

/** "4 s", "2 min 5 s", "1 h 3 min", "2 d 4 h". */
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
const percent = (share) => `${(share * 100).toFixed(1)}%`;

/**
 * The events that turn member list `before` into `after` (the node's
 * src/cluster/timeline.rs rules, for the URL mode): joins, state changes,
 * ckit state changes, removals.
 */
export function diffMembers(before, after, now) {
  const old = new Map(before.map((m) => [m.name, m]));
  const events = [];
  const ev = (kind, m, extra = {}) => ({ at: now, kind, name: m.name, addr: m.addr, state: m.state, ckitState: m.ckitState, ...extra });
  for (const m of after) {
    const o = old.get(m.name);
    if (!o) {
      events.push(ev('joined', m));
      continue;
    }
    if (o.state !== m.state) events.push(ev(m.state, m, { from: o.state }));
    if (o.ckitState !== m.ckitState && m.ckitState) events.push(ev('ckit', m, { ckitFrom: o.ckitState }));
  }
  const names = new Set(after.map((m) => m.name));
  for (const o of before) if (!names.has(o.name)) events.push(ev('removed', o, { from: o.state }));
  return events;
}

// ---------------------------------------------------------------------------
// Sources: each poll() answers { members, events, shares, self? }.

async function getJson(path) {
  const res = await fetch(path, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${(await res.text()).trim()}`);
  return res.json();
}

/** The node that serves this page. */
class NodeSource {
  constructor() {
    this.after = 0;
    this.interval = 1000;
  }

  describe(self) {
    const out = [document.createTextNode('As seen by ')];
    if (self) out.push(el('b', {}, self.name), ' ', el('code', {}, self.addr), ', the node serving this page');
    else out.push('the node serving this page');
    out.push(' · polled every second');
    return out;
  }

  async poll(hasher) {
    // Relative paths: the page may sit behind a proxy's prefix.
    const [m, e, s] = await Promise.all([
      getJson('api/v1/members'),
      getJson(`api/v1/events?after=${this.after}`),
      getJson(`api/v1/shards?hasher=${encodeURIComponent(hasher)}`),
    ]);
    const members = m.members.map((r) => ({
      name: r.name, addr: r.addr, state: r.state, incarnation: r.incarnation,
      ckitState: r.ckit_state ?? undefined, since: r.state_since_ms, local: r.local,
    }));
    const events = e.events.map((r) => ({
      id: r.seq, at: r.at_ms, kind: r.kind, name: r.name, addr: r.addr, state: r.state,
      from: r.from ?? undefined, ckitState: r.ckit_state ?? undefined, ckitFrom: r.ckit_from ?? undefined,
    }));
    if (e.latest_seq < this.after) {
      // The node restarted and numbers its events from 1 again: start over.
      this.after = 0;
      return { ...(await this.poll(hasher)), restarted: true };
    }
    if (events.length) this.after = events[events.length - 1].id;
    const shares = { hasher: s.hasher, tokensPerPeer: s.tokens_per_peer, sampleKeys: s.sample_keys, shares: s.shares };
    return { members, events, shares, self: members.find((x) => x.local) };
  }
}

/** A node given by URL, asked with the npm package's members() and lookup(). */
class UrlSource {
  constructor(url, label) {
    this.url = url;
    this.label = label || undefined;
    this.interval = 2000;
    this.previous = null;
    this.seenSince = new Map(); // name -> { state, since: first seen in it, atLeast }
    this.sharesFor = ''; // the peer set + hasher the cached shares were measured for
    this.shares = null;
    this.nextId = 1;
  }

  describe() {
    return ['As seen by ', el('code', {}, this.url), ' through the npm package’s ', el('code', {}, 'members()'), ' · polled every 2 s'];
  }

  async load() {
    this.pkg = await import('../pkg/gossiphttp.js');
    if (typeof this.pkg.default === 'function') await this.pkg.default();
  }

  async poll(hasher) {
    if (!this.pkg) await this.load();
    const raw = await this.pkg.members(this.url, { timeoutMs: 5000, label: this.label });
    const now = Date.now();
    const members = raw
      .map((r) => {
        let seen = this.seenSince.get(r.name);
        if (!seen || seen.state !== r.state) {
          // In the first answer, how long a state has lasted is unknown: "at least".
          seen = { state: r.state, since: now, atLeast: this.previous === null };
          this.seenSince.set(r.name, seen);
        }
        return {
          name: r.name, addr: r.addr, state: r.state, incarnation: r.incarnation, ckitState: r.ckitState,
          since: seen.since, sinceAtLeast: seen.atLeast,
        };
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // The first answer is the starting point, not a series of joins.
    const events = this.previous === null ? [] : diffMembers(this.previous, members, now);
    for (const e of events) e.id = this.nextId++;
    this.previous = members;
    return { members, events, shares: this.shares, sharesLater: this.measure(raw, hasher) };
  }

  /**
   * The node's measurement, in the page: the first owner of each sample key, by
   * lookup(). A promise of the new split when the peers or the hasher changed, else
   * null. lookup() keeps the sharder it built for the last members and hasher, so
   * the 10,000 lookups build it once; the page yields between batches of 100.
   */
  measure(raw, hasher) {
    // The peers a ckit node shards over: memberlist still lists alive and suspect
    // members. Only participants own keys for writes, so only they are handed over.
    const participants = raw
      .filter((m) => (m.state === 'alive' || m.state === 'suspect') && m.ckitState === 'participant')
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const key = hasher + '|' + participants.map((m) => m.name).join(',');
    if (key === this.sharesFor) return null;
    this.sharesFor = key;
    return (async () => {
      const counts = new Map(participants.map((m) => [m.name, 0]));
      for (let i = 0; participants.length && i < URL_SAMPLE_KEYS; i++) {
        const [owner] = this.pkg.lookup(String(i), 1, participants, { hasher });
        counts.set(owner.name, counts.get(owner.name) + 1);
        if (i % 100 === 99) {
          await new Promise((r) => setTimeout(r));
          if (this.sharesFor !== key) return null; // measuring another split by now
        }
      }
      this.shares = {
        hasher,
        tokensPerPeer: hasher === 'ring' ? 512 : null,
        sampleKeys: URL_SAMPLE_KEYS,
        shares: participants.map((m) => ({ name: m.name, addr: m.addr, keys: counts.get(m.name), share: counts.get(m.name) / URL_SAMPLE_KEYS })),
      };
      return this.shares;
    })();
  }
}

// ---------------------------------------------------------------------------
// Rendering.

const view = { members: [], shares: null, colors: new Map(), lastOk: 0 };

function renderSummary(members) {
  for (const li of $('summary').children) {
    const n = members.filter((m) => m.state === li.dataset.state).length;
    li.querySelector('b').textContent = String(n);
    li.dataset.zero = n === 0 ? '1' : '0';
  }
}

function sinceText(m, now) {
  if (m.since == null) return '';
  return `${m.state} for ${m.sinceAtLeast ? 'at least ' : ''}${duration(now - m.since)}`;
}

function renderMembers(members) {
  const now = Date.now();
  const shareOf = new Map((view.shares?.shares ?? []).map((s) => [s.name, s]));
  $('members-title').textContent = `Members (${members.length})`;
  $('members').replaceChildren(
    ...members.map((m) => {
      const share = shareOf.get(m.name);
      return el(
        'li',
        { class: 'member', 'data-name': m.name, 'data-state': m.state },
        el('div', { class: 'row' }, el('span', { class: 'name' }, m.name), m.local ? el('span', { class: 'you' }, 'this node') : null),
        el('div', { class: 'addr mono' }, m.addr),
        el(
          'div',
          { class: 'badges' },
          el('span', { class: 'badge state' }, el('span', { 'aria-hidden': 'true' }, STATE_ICON[m.state] ?? '?'), m.state),
          el('span', { class: 'badge ckit', title: 'ckit node state' }, m.ckitState ?? 'no ckit state'),
        ),
        el('div', { class: 'since', 'data-since': m.since ?? '' }, sinceText(m, now)),
        share
          ? el('div', { class: 'owns' }, el('span', { class: 'swatch', style: `--c:${view.colors.get(m.name)}`, 'aria-hidden': 'true' }), `owns ${percent(share.share)} of keys`)
          : null,
        el('div', { class: 'meta' }, `incarnation ${m.incarnation}`),
      );
    }),
  );
}

function renderShares(shares) {
  const list = shares?.shares ?? [];
  view.colors = new Map(list.map((s, i) => [s.name, PALETTE[i % PALETTE.length]]));
  const svg = $('donut');
  const title = svg.querySelector('title');
  const r = 46;
  const c = 2 * Math.PI * r;
  const parts = [title, svgEl('circle', { class: 'track', cx: 60, cy: 60, r })];
  let offset = 0;
  for (const s of list) {
    const len = s.share * c;
    const gap = list.length > 1 ? Math.min(1.2, len / 4) : 0;
    parts.push(
      svgEl('circle', {
        class: 'slice', cx: 60, cy: 60, r, stroke: view.colors.get(s.name),
        'stroke-dasharray': `${Math.max(0, len - gap)} ${c}`, 'stroke-dashoffset': String(-offset), transform: 'rotate(-90 60 60)',
      }),
    );
    offset += len;
  }
  const big = svgEl('text', { class: 'big', x: 60, y: 62 });
  big.textContent = String(list.length);
  const small = svgEl('text', { class: 'small', x: 60, y: 76 });
  small.textContent = list.length === 1 ? 'participant' : 'participants';
  parts.push(big, small);
  svg.replaceChildren(...parts);
  title.textContent = list.length
    ? `Key space: ${list.map((s) => `${s.name} ${percent(s.share)}`).join(', ')}`
    : 'Key space: no participant owns keys';

  const hasherName = shares ? shares.hasher[0].toUpperCase() + shares.hasher.slice(1) : '';
  const how = shares
    ? `${hasherName} hasher${shares.tokensPerPeer ? `, ${shares.tokensPerPeer} tokens a peer` : ''}: the first owner of ${shares.sampleKeys.toLocaleString('en')} sample keys, as ckit’s Lookup(key, 1, OpReadWrite) picks it.`
    : '';
  $('keys-caption').textContent = !shares
    ? 'Measuring the key space…'
    : list.length
      ? `${how} An even split is ${percent(1 / list.length)} each.`
      : `No participant owns keys yet: members are viewers until they announce “participant”. ${how}`;
  $('shares').replaceChildren(
    ...list.map((s) =>
      el(
        'li',
        { 'data-name': s.name, 'data-share': s.share.toFixed(4), style: `--c:${view.colors.get(s.name)}` },
        el('span', { class: 'swatch', 'aria-hidden': 'true' }),
        el('span', { class: 'who' }, el('b', {}, s.name), ' ', el('span', { class: 'muted mono' }, s.addr)),
        el('span', { class: 'pct' }, percent(s.share)),
        el('span', { class: 'bar', 'aria-hidden': 'true' }, el('span', { style: `width:${(s.share * 100).toFixed(2)}%` })),
      ),
    ),
  );
}

function describeEvent(e) {
  const who = el('b', {}, e.name);
  switch (e.kind) {
    case 'joined':
      return [who, e.state === 'alive' ? ' joined' : ` appeared, already ${e.state}`];
    case 'alive':
      return [who, e.from === 'suspect' ? ' refuted the suspicion: alive' : ` is back: alive (was ${e.from})`];
    case 'suspect':
      return [who, ' is suspected: it missed a probe'];
    case 'dead':
      return [who, ` was declared dead${e.from && e.from !== 'suspect' ? ` (was ${e.from})` : ''}`];
    case 'left':
      return [who, ' left the cluster'];
    case 'ckit':
      return [who, e.ckitFrom ? ` ckit state: ${e.ckitFrom} → ${e.ckitState}` : ` is a ckit ${e.ckitState}`];
    case 'removed':
      return [who, ' was removed from the member list'];
    default:
      return [who, ` ${e.kind}`];
  }
}

function addEvents(events, fresh) {
  const list = $('timeline');
  for (const e of events) {
    const li = el(
      'li',
      { 'data-kind': e.kind, 'data-name': e.name, 'data-seq': e.id, class: fresh ? 'fresh' : undefined },
      el('span', { class: 'dot', 'aria-hidden': 'true' }, EVENT_ICON[e.kind] ?? '•'),
      el('div', { class: 'what' }, ...describeEvent(e)),
      el('time', { datetime: new Date(e.at).toISOString(), title: new Date(e.at).toString(), 'data-at': e.at }, ''),
    );
    list.prepend(li);
  }
  while (list.children.length > TIMELINE_SHOWN) list.lastElementChild.remove();
  $('timeline-empty').hidden = list.children.length > 0;
  tick();
}

/** Refreshes every relative time on the page. */
function tick() {
  const now = Date.now();
  for (const t of $('timeline').querySelectorAll('time')) {
    const at = Number(t.dataset.at);
    t.textContent = `${clock(at)} · ${duration(now - at)} ago`;
  }
  const byName = new Map(view.members.map((m) => [m.name, m]));
  for (const d of $('members').querySelectorAll('.since')) {
    const m = byName.get(d.closest('.member').dataset.name);
    if (m) d.textContent = sinceText(m, now);
  }
  if (view.lastOk) {
    const age = now - view.lastOk;
    $('status-text').textContent = age < 5000 ? `live · ${clock(view.lastOk)}` : `last update ${duration(age)} ago`;
  }
}

function showError(err) {
  $('error').hidden = false;
  $('error').textContent = `Cannot reach the node: ${err?.message ?? err}. Retrying; what is shown is from ${view.lastOk ? clock(view.lastOk) : 'nothing yet'}.`;
  $('status').dataset.live = '0';
  document.body.dataset.stale = '1';
}

// ---------------------------------------------------------------------------

async function main() {
  const params = new URLSearchParams(location.search);
  const url = params.get('url');
  const source = url ? new UrlSource(url, params.get('label')) : new NodeSource();
  document.body.dataset.source = url ? 'url' : 'node';
  const hasher = $('hasher');
  let first = true;
  let timer;
  let busy = false;

  async function refresh() {
    clearTimeout(timer);
    if (busy) {
      timer = setTimeout(refresh, 100); // a poll is under way: again right after it
      return;
    }
    busy = true;
    try {
      const { members, events, shares, self, restarted, sharesLater } = await source.poll(hasher.value);
      if (restarted) $('timeline').replaceChildren();
      sharesLater?.then((later) => {
        if (!later) return;
        view.shares = later;
        renderShares(later);
        renderMembers(view.members);
      });
      view.members = members;
      view.shares = shares;
      view.lastOk = Date.now();
      renderShares(shares);
      renderMembers(members);
      renderSummary(members);
      addEvents(events, !first);
      $('source').replaceChildren(...source.describe(self));
      $('error').hidden = true;
      $('status').dataset.live = '1';
      document.body.dataset.stale = '0';
      document.body.dataset.ready = '1';
      first = false;
    } catch (err) {
      showError(err);
    } finally {
      busy = false;
    }
    tick();
    timer = setTimeout(refresh, source.interval);
  }

  hasher.addEventListener('change', refresh);
  setInterval(tick, 1000);
  await refresh();
}

main();
