// charlm's page: one plain ES module, no build step. It speaks the JSON API of charlm/serve/app.py.
const $ = (sel) => document.querySelector(sel);
const HISTORY_KEY = "charlm.history";
const HISTORY_MAX = 200;
const PRESETS_KEY = "charlm.presets";
// what a preset sets: the shape and form fields, and the sampling ones
const PRESET_FIELDS = ["shape", "lengths", "template", "lines", "acrostic", "rhyme", "rhyme_with", "rhyme_table", "temperature", "top_k", "top_p", "max_copy", "num_samples", "length"];
const BUILT_IN_PRESETS = {
  "Free verse, 8 lines": { shape: "free", lines: "8" },
  "七言绝句": { shape: "form:七言绝句" },
  "Four lines of seven, AABB": { shape: "lengths", lengths: "7,7,7,7", rhyme: "AABB" },
  "Pop verse and chorus, ABAB/CCDD": { shape: "free", lines: "0", rhyme: "ABAB/CCDD" },
  "Acrostic 春夏秋冬 (七言绝句)": { shape: "form:七言绝句", acrostic: "春夏秋冬" },
  "Three drafts to compare": { shape: "free", lines: "8", num_samples: "3" },
};
let controller = null; // the running generation's AbortController
let lastRequest = null; // what Generate sent last (for "Next seed")
let runs = [];

// ---- small helpers -------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function getJSON(url, options) {
  const res = await fetch(url, options);
  const body = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

function download(name, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea", {}, text); // clipboard API needs a secure context: fall back
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  if (button) {
    const old = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = old), 1200);
  }
}

// ---- runs and forms ------------------------------------------------------------------------
async function loadRuns() {
  const { runs: list } = await getJSON("/api/runs");
  runs = list;
  const select = $("#run");
  const keep = localStorage.getItem("charlm.run");
  select.replaceChildren(...list.map((r) => el("option", { value: r.name }, r.builtin ? `${r.name} (shipped base)` : r.name)));
  if (!list.length) showError("no runs here: train one (charlm train) or start charlm serve with --checkpoint-dir");
  if (keep && list.some((r) => r.name === keep)) select.value = keep;
  showRun();
}

function showRun() {
  const r = runs.find((x) => x.name === $("#run").value);
  if (!r) return ($("#run-info").textContent = "");
  localStorage.setItem("charlm.run", r.name);
  const parts = [r.corpus, r.model, r.best_ppl != null ? `held-out ppl ${r.best_ppl.toFixed(2)}` : "", r.base ? `from ${r.base}` : ""];
  $("#run-info").textContent = parts.filter(Boolean).join(" · ");
}

async function loadForms() {
  const { forms } = await getJSON("/api/forms");
  $("#named-forms").replaceChildren(...forms.map((f) => el("option", { value: `form:${f.name}`, title: `${f.form} ${f.rhyme}\n${f.tones}` }, `${f.name}  (${f.form})`)));
}

function showShape() {
  const shape = $("#shape").value;
  for (const node of document.querySelectorAll("[data-for]")) node.hidden = node.dataset.for !== shape;
}

// ---- the request: generate's long options with underscores ---------------------------------
function numberOf(id) {
  const v = $(`#${id}`).value.trim();
  return v === "" ? undefined : Number(v);
}

function readRequest() {
  const req = { checkpoint: $("#run").value };
  const prefix = $("#prefix").value;
  if (prefix) req.prefix = prefix;
  const shape = $("#shape").value;
  if (shape === "lengths") req.form = $("#lengths").value.trim();
  else if (shape === "template") req.template = $("#template").value;
  else if (shape.startsWith("form:")) req.form = shape.slice(5);
  else if (numberOf("lines")) req.lines = numberOf("lines");
  for (const id of ["acrostic", "rhyme", "rhyme_with"]) {
    const v = $(`#${id}`).value.trim();
    if (v) req[id] = v;
  }
  if (req.acrostic && req.prefix) delete req.prefix; // an acrostic writes every line start itself
  if (req.acrostic && !req.form) delete req.lines;
  req.rhyme_table = $("#rhyme_table").value;
  for (const id of ["temperature", "top_k", "top_p", "seed", "max_copy", "num_samples", "length"]) {
    const v = numberOf(id);
    if (v !== undefined) req[id] = v;
  }
  return req;
}

// ---- generate, streamed --------------------------------------------------------------------
async function generate(req) {
  if (controller) controller.abort();
  showError("");
  lastRequest = req;
  controller = new AbortController();
  setRunning(true);
  const out = $("#output");
  out.replaceChildren(el("p", { class: "muted status" }, runs.length ? `loading ${req.checkpoint} and writing…` : "writing…"));
  let cards = [];
  try {
    const res = await fetch("/api/generate", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(req),
      signal: controller.signal,
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error(body.error || `${res.status} ${res.statusText}`);
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim()) cards = onEvent(JSON.parse(line), cards, req);
      }
    }
  } catch (e) {
    if (e.name === "AbortError") {
      for (const c of cards) c.card.classList.add("stopped");
      out.prepend(el("p", { class: "muted status" }, "stopped"));
    } else {
      showError(e.message);
      out.querySelector(".status")?.remove();
    }
  } finally {
    controller = null;
    setRunning(false);
  }
}

function onEvent(ev, cards, req) {
  const out = $("#output");
  if (ev.type === "start") {
    out.replaceChildren();
    if (ev.notes?.length) out.append(el("p", { class: "note" }, ev.notes.map((n) => `note: ${n}`).join("\n")));
    cards = ev.pieces.map((p, b) => {
      const pre = el("pre", { class: "text streaming" }, p);
      const card = el("article", { class: "sample", "data-sample": b }, el("div", { class: "meta muted" }, `seed ${ev.seed} · writing…`), pre);
      out.append(card);
      return { card, pre, text: p };
    });
    $("#seed").dataset.last = ev.seed;
  } else if (ev.type === "piece") {
    ev.pieces.forEach((p, b) => {
      if (!p) return;
      cards[b].text += p;
      cards[b].pre.textContent = cards[b].text;
    });
  } else if (ev.type === "result") {
    ev.samples.forEach((s, b) => {
      const entry = { id: `${Date.now()}-${b}`, at: new Date().toISOString(), request: { ...req, seed: ev.seed }, ...s, seed: ev.seed, sample: b, samples: ev.samples.length };
      cards[b].card.replaceWith(renderSample(entry, { saved: true }));
      saveHistory(entry);
    });
    if (ev.short) out.append(el("p", { class: "note" }, `note: ${ev.short} sample(s) reached the length before the lines; raise Length`));
  } else if (ev.type === "error") {
    showError(ev.error);
  }
  return cards;
}

function setRunning(on) {
  $("#generate").disabled = on;
  $("#stop").disabled = !on;
  $("#next-seed").disabled = on || !lastRequest;
}

// ---- a finished sample: lines with their rhyme, copied spans marked ------------------------
function renderText(text, spans, rhymes) {
  const chars = Array.from(text); // code points, as the server counts them
  const marked = new Array(chars.length).fill(null);
  for (const s of spans || []) for (let i = s.start; i < s.end && i < chars.length; i++) marked[i] = s;
  const pre = el("div", { class: "text" });
  let line = el("div", { class: "line" });
  let lineText = "";
  let k = 0; // the next scanned line (scan skips blank ones)
  const close = () => {
    if (lineText.trim() && rhymes && rhymes[k]) {
      const r = rhymes[k++];
      line.append(el("span", { class: `rhyme letter-${r.letter}`, title: "rhyme group (as charlm scan reads it)" }, r.rhyme ? `${r.letter} ${r.rhyme}` : r.letter));
    }
    pre.append(line);
    line = el("div", { class: "line" });
    lineText = "";
  };
  let i = 0;
  while (i < chars.length) {
    if (chars[i] === "\n") {
      close();
      i++;
      continue;
    }
    const span = marked[i];
    let j = i;
    let piece = "";
    while (j < chars.length && chars[j] !== "\n" && marked[j] === span) piece += chars[j++];
    lineText += piece;
    line.append(span ? el("mark", { title: `copied from the training text: ${span.length} characters`, "data-length": span.length }, piece) : piece);
    i = j;
  }
  if (lineText || !pre.childNodes.length) close();
  return pre;
}

function describe(req) {
  const skip = new Set(["checkpoint", "seed", "prefix"]);
  return Object.entries(req).filter(([k]) => !skip.has(k)).map(([k, v]) => `${k}=${typeof v === "string" && v.length > 24 ? v.slice(0, 24) + "…" : v}`).join(" ");
}

function renderSample(entry, { saved = false, compact = false } = {}) {
  const copies = entry.copied_spans;
  const longest = copies && copies.length ? Math.max(...copies.map((s) => s.length)) : 0;
  const copyNote = copies == null ? "copies: training text not at hand" : copies.length ? `${copies.length} copied span(s), longest ${longest}` : "nothing copied (8+ characters)";
  const buttons = el("div", { class: "buttons small" },
    el("button", { type: "button", onclick: (e) => copyText(entry.text, e.target) }, "Copy"),
    el("button", { type: "button", onclick: () => download(`charlm-seed${entry.seed}.txt`, entry.text) }, "Download .txt"),
  );
  if (!compact) {
    buttons.append(el("button", { type: "button", class: "again", onclick: () => { applyRequest(entry.request); generate({ ...entry.request, seed: entry.seed + 1 }); } }, "Next seed"));
  }
  return el("article", { class: "sample done", "data-seed": entry.seed },
    el("div", { class: "meta" },
      el("strong", {}, `seed ${entry.seed}`), entry.samples > 1 ? ` · sample ${entry.sample + 1} of ${entry.samples}` : "", " ",
      el("span", { class: "muted" }, `${entry.request.checkpoint} · ${describe(entry.request)}`), " ",
      el("span", { class: copies && copies.length ? "copies warn" : "copies muted" }, copyNote),
      saved ? el("span", { class: "muted" }, " · kept in History") : ""),
    renderText(entry.text, copies, entry.line_rhymes),
    buttons);
}

function applyRequest(req) {
  $("#seed").value = req.seed ?? "";
}

// ---- history in local storage ----------------------------------------------------------------
function readHistory() {
  try {
    const list = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

function writeHistory(list) {
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify(list.slice(0, HISTORY_MAX)));
  } catch (e) {
    showError(`history not saved: ${e.message}`);
  }
  showHistory();
}

function saveHistory(entry) {
  writeHistory([entry, ...readHistory()]);
}

function showHistory() {
  const list = readHistory();
  $("#history-count").textContent = list.length ? `(${list.length})` : "";
  $("#history").replaceChildren(...list.map((entry) => {
    const tick = el("input", { type: "checkbox", class: "pick", "aria-label": "compare", onchange: pickedChanged });
    tick.dataset.id = entry.id;
    const card = renderSample(entry, { compact: true });
    card.querySelector(".buttons").append(
      el("button", { type: "button", onclick: () => { applyRequest(entry.request); selectTab("write"); generate({ ...entry.request, seed: entry.seed + 1 }); } }, "Next seed"),
      el("button", { type: "button", class: "danger", onclick: () => writeHistory(readHistory().filter((x) => x.id !== entry.id)) }, "Delete"),
    );
    card.querySelector(".meta").prepend(el("label", { class: "pick-label" }, tick, "compare"), " · ", el("span", { class: "muted" }, new Date(entry.at).toLocaleString()), " ");
    return el("li", {}, card);
  }));
  pickedChanged();
}

function pickedChanged() {
  $("#compare").disabled = document.querySelectorAll("#history .pick:checked").length !== 2;
}

function compare() {
  const ids = [...document.querySelectorAll("#history .pick:checked")].map((x) => x.dataset.id);
  const list = readHistory().filter((x) => ids.includes(x.id));
  const view = $("#compare-view");
  view.replaceChildren(...list.map((entry) => renderSample(entry, { compact: true })), el("button", { type: "button", onclick: () => (view.hidden = true) }, "Close"));
  view.hidden = false;
}

function importHistory(file) {
  file.text().then((text) => {
    const items = JSON.parse(text);
    if (!Array.isArray(items) || !items.every((x) => x && typeof x.text === "string" && x.request)) throw new Error("not a charlm history export");
    const known = new Set(readHistory().map((x) => x.id));
    writeHistory([...items.filter((x) => !known.has(x.id)), ...readHistory()]);
  }).catch((e) => showError(`import: ${e.message}`));
}

// ---- scan ------------------------------------------------------------------------------------
async function scan(event) {
  event.preventDefault();
  showError("");
  try {
    const r = await getJSON("/api/scan", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: $("#scan-text").value, rhyme_table: $("#scan-table").value }),
    });
    const rows = r.lines.map((ln) => el("tr", {}, el("td", { class: "num" }, ln.length), el("td", {}, ln.text), el("td", { class: "tones" }, ln.tones), el("td", {}, ln.rhyme || "-"), el("td", { class: `letter letter-${ln.letter}` }, ln.letter)));
    $("#scan-result").replaceChildren(
      el("p", {}, el("strong", {}, `scheme ${r.scheme}`), ` · ${r.stanzas} stanza(s) · ${r.rhyme_table} · adjacent lines rhyming ${r.rhyming_pairs}/${r.adjacent_pairs} (${Math.round(r.rhyme_rate * 100)}%)`),
      el("table", {}, el("thead", {}, el("tr", {}, ...["len", "line", "tones", "rhyme", ""].map((h) => el("th", {}, h)))), el("tbody", {}, rows)),
    );
  } catch (e) {
    showError(e.message);
  }
}

// ---- presets: built-in ones, and the user's own in local storage -------------------------------
function userPresets() {
  try {
    const p = JSON.parse(localStorage.getItem(PRESETS_KEY) || "{}");
    return p && typeof p === "object" && !Array.isArray(p) ? p : {};
  } catch {
    return {};
  }
}

function showPresets(selected = "") {
  const own = userPresets();
  const group = (label, names) => el("optgroup", { label }, names.map((n) => el("option", { value: n }, n)));
  $("#preset").replaceChildren(el("option", { value: "" }, "(your settings)"), group("Presets", Object.keys(BUILT_IN_PRESETS)), ...(Object.keys(own).length ? [group("Yours", Object.keys(own))] : []));
  $("#preset").value = selected;
  $("#delete-preset").disabled = !(selected in own);
}

function applyPreset(name) {
  const preset = BUILT_IN_PRESETS[name] || userPresets()[name];
  if (!preset) return showPresets("");
  for (const id of PRESET_FIELDS) {
    const node = $(`#${id}`);
    const value = preset[id] ?? (id === "shape" ? "free" : node.defaultValue ?? "");
    if (node.tagName === "SELECT") node.value = value || node.options[0].value;
    else node.value = value;
  }
  showShape();
  $("#delete-preset").disabled = !(name in userPresets());
}

function savePreset() {
  const name = (prompt("Name these settings:") || "").trim();
  if (!name) return;
  const own = userPresets();
  own[name] = Object.fromEntries(PRESET_FIELDS.map((id) => [id, $(`#${id}`).value]));
  localStorage.setItem(PRESETS_KEY, JSON.stringify(own));
  showPresets(name);
}

function deletePreset() {
  const own = userPresets();
  delete own[$("#preset").value];
  localStorage.setItem(PRESETS_KEY, JSON.stringify(own));
  showPresets("");
}

// ---- tabs and wiring -------------------------------------------------------------------------
function selectTab(name) {
  for (const b of document.querySelectorAll("[data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${name}`;
}

function main() {
  for (const b of document.querySelectorAll("[data-tab]")) b.addEventListener("click", () => selectTab(b.dataset.tab));
  $("#run").addEventListener("change", showRun);
  $("#shape").addEventListener("change", showShape);
  $("#controls").addEventListener("submit", (e) => { e.preventDefault(); generate(readRequest()); });
  $("#stop").addEventListener("click", () => controller && controller.abort());
  $("#next-seed").addEventListener("click", () => {
    if (!lastRequest) return;
    const seed = Number($("#seed").dataset.last ?? lastRequest.seed ?? 0) + 1;
    $("#seed").value = seed;
    generate({ ...lastRequest, seed });
  });
  $("#compare").addEventListener("click", compare);
  $("#export").addEventListener("click", () => download("charlm-history.json", JSON.stringify(readHistory(), null, 2), "application/json"));
  $("#import").addEventListener("change", (e) => e.target.files[0] && importHistory(e.target.files[0]));
  $("#scan-form").addEventListener("submit", scan);
  $("#preset").addEventListener("change", (e) => applyPreset(e.target.value));
  $("#save-preset").addEventListener("click", savePreset);
  $("#delete-preset").addEventListener("click", deletePreset);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !$("#generate").disabled && !$("#tab-write").hidden) {
      e.preventDefault();
      generate(readRequest());
    } else if (e.key === "Escape" && controller) {
      controller.abort();
    }
  });
  showPresets("");
  showShape();
  showHistory();
  loadRuns().catch((e) => showError(e.message));
  loadForms().catch((e) => showError(e.message));
}

main();
