// The partner dashboard and the operator's view, from the broker's JSON APIs:
//   partners:  GET /api/v1/partner/dashboard  (Authorization: Bearer pkey_…)
//   operator:  GET /api/v1/admin/overview     (Authorization: Bearer admin_…)
// Work arrives as decimal strings (u128) and is summed with BigInt; money is integer satoshis. Charts
// are plain SVG drawn here: a dozen lines of code do not justify a charting library.

const $ = (id) => document.getElementById(id);
const KEY = 'minepass.dashboard.key';

const formatRate = (hps) => {
  const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s'];
  let i = 0;
  while (hps >= 1000 && i < units.length - 1) (hps /= 1000), i++;
  return `${hps.toFixed(hps < 10 ? 2 : 1)} ${units[i]}`;
};
const formatSats = (sats) => `${BigInt(sats).toLocaleString('en-US')} sats`;
const formatWork = (work) => {
  const w = Number(BigInt(work));
  return w >= 1e12 ? `${(w / 1e12).toFixed(2)} T hashes` : w >= 1e9 ? `${(w / 1e9).toFixed(2)} G hashes` : `${(w / 1e6).toFixed(2)} M hashes`;
};
/** Net settled earnings over every period of a statement, in sats. */
const settledTotal = (statement) => statement.settled.reduce((sum, [, , net]) => sum + BigInt(net), 0n);
const percent = (part, whole) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : '—');

function card(label, value, note = '') {
  const el = document.createElement('div');
  el.className = 'card';
  el.innerHTML = `<small></small><b></b><small></small>`;
  el.children[0].textContent = label;
  el.children[1].textContent = value;
  el.children[2].textContent = note;
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function svgElement(name, attributes, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A line chart of one or more series of [x (ms), y] over the same x values. */
function lineChart(container, series, { format }) {
  // Drawn at the container's width, so a wide figure is not a letterboxed small one.
  const width = Math.max(300, container.clientWidth || 600);
  const height = 180;
  const pad = { left: 64, right: 10, top: 18, bottom: 22 };
  const svg = svgElement('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img' });
  const xs = series[0].map(([x]) => x);
  const maxY = Math.max(1e-9, ...series.flat().map(([, y]) => y));
  const x = (v) => pad.left + ((v - xs[0]) / Math.max(1, xs.at(-1) - xs[0])) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / maxY) * (height - pad.top - pad.bottom);
  svg.append(svgElement('line', { class: 'axis', x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }));
  svg.append(svgElement('line', { class: 'axis', x1: pad.left, x2: pad.left, y1: pad.top, y2: y(0) }));
  svg.append(svgElement('text', { x: 4, y: pad.top + 4 }, format(maxY)));
  svg.append(svgElement('text', { x: 4, y: y(0) }, format(0)));
  const hours = Math.round((xs.at(-1) - xs[0]) / 3_600_000);
  svg.append(svgElement('text', { x: pad.left, y: height - 4 }, `−${hours} h`));
  svg.append(svgElement('text', { x: width - pad.right - 22, y: height - 4 }, 'now'));
  series.forEach((points, i) => {
    const d = points.map(([px, py], j) => `${j ? 'L' : 'M'}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
    svg.append(svgElement('path', { class: `series-${i}`, d }));
  });
  container.replaceChildren(svg);
}

/** A bar chart of [label, value, estimate?]. */
function barChart(container, bars, format) {
  const width = 600;
  const height = 180;
  const svg = svgElement('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img' });
  if (!bars.length) {
    svg.append(svgElement('text', { x: 10, y: 90 }, 'No settled period yet.'));
    container.replaceChildren(svg);
    return;
  }
  const max = Math.max(1, ...bars.map(([, v]) => v));
  const slot = (width - 20) / bars.length;
  bars.forEach(([label, value, estimate], i) => {
    const h = (value / max) * (height - 40);
    svg.append(svgElement('rect', { class: `bar${estimate ? ' estimate' : ''}`, x: 10 + i * slot + 4, y: height - 20 - h, width: Math.max(2, slot - 8), height: h }));
    svg.append(svgElement('text', { x: 10 + i * slot + 4, y: height - 6 }, label));
    svg.append(svgElement('text', { x: 10 + i * slot + 4, y: height - 24 - h }, format(value)));
  });
  container.replaceChildren(svg);
}

async function api(path) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
  const body = await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }));
  if (!response.ok || body.ok === false) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

/** Hash rate series from buckets: work per bucket ÷ bucket seconds. */
const rates = (data, field) =>
  data.series.map((b) => [b.start, Number(BigInt(b[field])) / (data.bucket_ms / 1000)]);

async function showPartner() {
  const data = await api('/api/v1/partner/dashboard?hours=24');
  $('partner').hidden = false; // shown before drawing: charts take the width they get
  $('who').textContent = `— ${data.partner.name}`;
  const accepted = Number(BigInt(data.accepted_work)) / 86400;
  const lastMiners = data.series.at(-1)?.miners ?? 0;
  const settled = settledTotal(data.statement);
  const estimate = data.estimate ? formatSats(data.estimate.net_sats) : 'set the economics (operator)';
  $('cards').replaceChildren(
    card('Pool-accepted work, 24 h', formatWork(data.accepted_work), `${formatRate(accepted)} average`),
    card('Active miners', String(lastMiners), `peak ${Math.max(0, ...data.series.map((b) => b.miners))} in 24 h`),
    card('Consent rate', percent(data.consent.given, data.consent.answers), `${data.consent.given} of ${data.consent.answers} answers`),
    card('Estimated earnings, 24 h', estimate, `PPS estimate, after ${data.partner.commission_bps / 100} % commission`),
    card('Settled earnings', formatSats(settled), `${data.statement.settled.length} period(s)`),
    card('Pending payout', formatSats(data.statement.owed), `${formatSats(data.statement.due)} due · ${formatSats(data.statement.paid)} paid`),
  );
  // Two charts, not two lines: pool shares are rarer than browser shares, so on one axis the
  // earning line would hug zero.
  lineChart($('chart-rate'), [rates(data, 'accepted_work')], { format: formatRate });
  lineChart($('chart-verified'), [rates(data, 'verified_work')], { format: formatRate });
  lineChart($('chart-miners'), [data.series.map((b) => [b.start, b.miners])], { format: (v) => v.toFixed(0) });
  barChart(
    $('chart-settled'),
    data.statement.settled.map(([name, source, net]) => [name, Number(net), source === 'estimate']),
    (v) => `${v.toLocaleString('en-US')}`,
  );
  setupCalculator(data);
}

function setupCalculator(data) {
  // Measured by the broker: one device's hash rate while it mines (its shares over its mining time).
  $('calc-rate').value = Number(BigInt(data.device_hashrate));
  if (data.economics) {
    $('calc-difficulty').value = data.economics.network_difficulty;
    $('calc-reward').value = data.economics.block_reward_sats;
  }
  $('calc-commission').value = data.partner.commission_bps / 100;
  const update = () => {
    const rate = Number($('calc-rate').value);
    const difficulty = Number($('calc-difficulty').value);
    const reward = Number($('calc-reward').value);
    const price = Number($('calc-price').value);
    const keep = (1 - Number($('calc-fee').value) / 100) * (1 - Number($('calc-commission').value) / 100);
    if (!(rate > 0 && difficulty > 0 && reward > 0)) {
      $('calc-result').textContent = 'Enter a hash rate, the network difficulty and the block reward.';
      return;
    }
    // Display only: an expectation in floating point, shown with its inputs.
    const sats = ((rate * 3600 * reward) / (difficulty * 2 ** 32)) * keep;
    const usd = (sats / 1e8) * price;
    $('calc-result').textContent =
      `≈ ${sats.toPrecision(3)} sats per device-hour for you, ${(sats * 1e6).toPrecision(3)} sats per million device-hours` +
      (price > 0 ? ` (≈ $${(usd * 1e6).toPrecision(3)})` : '') + '.';
  };
  for (const input of document.querySelectorAll('#calculator input')) input.addEventListener('input', update);
  update();
}

async function showOperator() {
  const data = await api('/api/v1/admin/overview?hours=24');
  $('operator').hidden = false;
  $('who').textContent = '— operator';
  const commission = -(data.balances['income:commission'] ?? 0);
  $('operator-cards').replaceChildren(
    card('Pool-accepted work, 24 h', formatWork(data.all.accepted_work)),
    card('Partners', String(data.partners.length)),
    card('Consent rate', percent(data.all.consent.given, data.all.consent.answers)),
    card('Commission earned', formatSats(commission)),
    card('Wallet', formatSats(data.balances['assets:wallet'] ?? 0), `receivable ${formatSats(data.balances['assets:receivable'] ?? 0)}`),
  );
  lineChart($('chart-all'), [rates(data.all, 'accepted_work')], { format: formatRate });
  const rows = data.partners.map((p) => {
    const tr = document.createElement('tr');
    const cells = [
      p.partner.name,
      p.partner.commission_bps === null ? 'default' : `${p.partner.commission_bps / 100} %`,
      formatWork(p.accepted_work),
      percent(p.consent.given, p.consent.answers),
      formatSats(settledTotal(p.statement)),
      formatSats(p.statement.owed),
      formatSats(p.statement.due),
      formatSats(p.statement.paid),
    ];
    cells.forEach((text, i) => {
      const td = document.createElement('td');
      td.textContent = text;
      if (i > 1) td.className = 'num';
      tr.append(td);
    });
    return tr;
  });
  document.querySelector('#partners tbody').replaceChildren(...rows);
}

async function open() {
  const key = sessionStorage.getItem(KEY);
  if (!key) return;
  $('login').hidden = true;
  $('logout').hidden = false;
  try {
    await (key.startsWith('admin_') ? showOperator() : showPartner());
    document.body.dataset.ready = 'true';
  } catch (error) {
    sessionStorage.removeItem(KEY);
    $('login').hidden = false;
    $('logout').hidden = true;
    $('login-error').textContent = error.message === 'unauthorized' ? 'That key is not valid.' : `Could not load: ${error.message}`;
  }
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $('key').value.trim());
  open();
});
$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  location.reload();
});
open();
