"use strict";
// The explorer page: a client of the public API (see /docs) and nothing else.
// Plain browser JavaScript, no framework and no build step.

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

const state = {
  model: null,  // GET /model's answer
  user: null,  // the chosen user's id; null while recommending for a described new user
  shown: [],  // item ids on screen, best first: what the next list is compared with
  filterField: null,  // the item field the "Only" choice filters by, if the catalog has one
  asked: null,  // who and which filter the list on screen was asked for; null: no list yet
  added: null,  // the item this page added last, {itemId, values}: marked wherever listed
};

const CHANGES = "Badges mark what changed: new in the list, ▲ up, ▼ down.";

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// ---- talking to the API -------------------------------------------------------------------

// The API key typed into the page, kept for this tab only (sessionStorage), sent as a bearer
// token; without one the page works against a service that needs none (the quick start).
const KEY_STORE = "gmlrec-api-key";

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

async function api(method, path, body, { quiet = false } = {}) {
  const started = performance.now();
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(`${method} ${path}: the service did not answer (${err.message}).`, 0);
  }
  const text = await response.text();
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    // not JSON: the raw text is shown if this is an error
  }
  if (!quiet) showTiming(method, path, response, performance.now() - started, data);
  if (!response.ok) {
    const why = `${response.status} ${response.statusText}`.trim();
    const said = problem(data, text);
    const hint = response.status === 401 ? "Enter an API key at the top of the page." :
      response.status === 403 ? "Enter a key of that scope, or an admin key, at the top of " +
        "the page." : "";
    const end = hint && !/[.!?]$/.test(said) ? "." : "";
    throw new ApiError(`${method} ${path} answered ${why}: ${said}${end}${hint && ` ${hint}`}`,
      response.status);
  }
  return data;
}

// The service's error bodies are {"detail": "message"} or {"detail": [{loc, msg}, ...]}.
function problem(data, text) {
  const detail = data && data.detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const where = (d.loc || []).filter((part) => part !== "body").join(".");
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  if (typeof detail === "string") return detail;
  return text.trim().slice(0, 300) || "no details given";
}

function showTiming(method, path, response, roundTripMs, data) {
  const timing = /(?:^|,)\s*app;dur=([0-9.]+)/.exec(response.headers.get("Server-Timing") || "");
  $("server-time").textContent = timing ? `${Number(timing[1]).toFixed(2)} ms` : "not reported";
  $("round-trip").textContent = `${roundTripMs.toFixed(1)} ms`;
  $("last-request").textContent = `${method} ${path}`;
  $("request-id").textContent = response.headers.get("X-Request-ID") || "–";
  if (data && data.model_version) $("answer-version").textContent = data.model_version;
}

// Runs one user action; whatever goes wrong is shown in the alert box, readably.
async function guarded(action) {
  const box = $("error");
  box.hidden = true;
  box.textContent = "";
  try {
    await action();
  } catch (err) {
    if (!(err instanceof ApiError)) console.error(err);
    box.textContent = err instanceof ApiError ? err.message : `The page failed: ${err.message}`;
    box.hidden = false;
  }
}

// ---- small DOM helpers --------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function pretty(name) {
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function titleOf(item) {
  return item.title || `Item ${item.item_id}`;
}

// Everything the answer says about an item besides its title and score; of the item this
// page added, the values it was added with.
function metaOf(item) {
  const parts = [`item ${item.item_id}`];
  for (const [key, value] of Object.entries(item)) {
    if (["item_id", "score", "title", "explanation"].includes(key) || value === "") continue;
    parts.push(String(value).split("|").join(", "));
  }
  if (isAdded(item) && state.added.values.length) parts.push(state.added.values.join(", "));
  return parts.join(" · ");
}

function isAdded(item) {
  return state.added !== null && item.item_id === state.added.itemId;
}

// ---- the model and the profile form -------------------------------------------------------

function profileFields(model) {
  return model.fields.filter((f) => f.side === "user" && f.name !== model.id_field);
}

function buildProfileForm(model) {
  const box = $("profile-fields");
  box.replaceChildren();
  for (const field of profileFields(model)) {
    const id = `field-${field.name}`;
    const complete = field.values.length === field.size;
    if (field.kind === "multihot" && complete) {
      box.append(fillChoices(el("fieldset", "choices"), field));
      continue;
    }
    const wrap = el("div", "field");
    const label = el("label", "", pretty(field.name));
    label.htmlFor = id;
    let control;
    if (complete) {
      control = el("select");
      control.append(new Option("(not set)", ""));
      for (const value of field.values) control.append(new Option(value, value));
    } else {
      control = el("input");
      control.placeholder = `one of ${field.size.toLocaleString("en")} values`;
      const list = el("datalist");
      list.id = `${id}-values`;
      for (const value of field.values) list.append(new Option(value));
      control.setAttribute("list", list.id);
      wrap.append(list);
    }
    control.id = id;
    control.dataset.field = field.name;
    wrap.prepend(label, control);
    box.append(wrap);
  }
  if (!box.children.length) {
    box.append(el("p", "hint", "This model knows its users by id only: there is nothing to edit."));
  }
}

// A fieldset of one checkbox per value of a multi-valued field whose values are all known.
function fillChoices(set, field) {
  set.dataset.field = field.name;
  set.replaceChildren(el("legend", "", pretty(field.name)));
  for (const value of field.values) {
    const label = el("label", "choice");
    const box = el("input");
    box.type = "checkbox";
    box.value = value;
    label.append(box, ` ${value}`);
    set.append(label);
  }
  return set;
}

function checkedIn(set) {
  return [...set.querySelectorAll("input:checked")].map((box) => box.value);
}

function profileFeatures() {
  const features = {};
  for (const control of $("profile-fields").querySelectorAll("[data-field]")) {
    const name = control.dataset.field;
    if (control.tagName === "FIELDSET") {
      const checked = checkedIn(control);
      if (checked.length) features[name] = checked;
    } else if (control.value.trim()) {
      features[name] = control.value.trim();
    }
  }
  return features;
}

function fillProfile(features) {
  for (const control of $("profile-fields").querySelectorAll("[data-field]")) {
    const given = features[control.dataset.field];
    const values = given === undefined ? [] : [].concat(given).map(String);
    if (control.tagName === "FIELDSET") {
      for (const box of control.querySelectorAll("input")) box.checked = values.includes(box.value);
      continue;
    }
    const value = values[0] || "";
    if (control.tagName === "SELECT" && ![...control.options].some((o) => o.value === value)) {
      control.append(new Option(`${value} (unknown to the model)`, value));
    }
    control.value = value;
  }
}

function ignoredText(ignored) {
  const parts = Object.entries(ignored || {}).map(([f, v]) => `${f}: ${v.join(", ")}`);
  return parts.length ? ` Unknown to the model, so ignored: ${parts.join("; ")}.` : "";
}

// ---- choosing who to recommend for --------------------------------------------------------

function showSuggestions(userIds) {
  const chips = $("suggestions");
  chips.replaceChildren();
  for (const userId of userIds) {
    const item = el("li");
    const button = el("button", "chip", userId);
    button.type = "button";
    button.setAttribute("aria-label", `Choose user ${userId}`);
    button.addEventListener("click", () => {
      $("user-id").value = userId;
      chooseUser(userId);
    });
    item.append(button);
    chips.append(item);
  }
  fillDatalist(userIds);
}

function fillDatalist(userIds) {
  $("user-ids").replaceChildren(...userIds.map((u) => new Option(u)));
}

let searchTimer = null;
function searchUsers() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const prefix = $("user-id").value.trim();
    try {
      const found = await api("GET", `/users?limit=20&prefix=${enc(prefix)}`, undefined,
        { quiet: true });
      fillDatalist(found.user_ids);
    } catch {
      // suggestions only: typing an id the list lacks still works
    }
  }, 200);
}

function setUser(userId, note) {
  state.user = userId;
  state.shown = [];
  state.asked = null;
  const save = $("save-profile");
  save.disabled = userId === null;
  save.textContent = userId === null ? "Save profile" : `Save as user ${userId}`;
  $("profile-note").textContent = note;
}

async function chooseUser(userId) {
  if (!userId) return;
  await guarded(async () => {
    $("last-action").textContent = "";
    let profile;
    try {
      profile = await api("GET", `/users/${enc(userId)}`);
    } catch (err) {
      if (err.status !== 404) throw err;
      setUser(userId, `User ${userId} has no profile yet: fill in the features and save ` +
        "to create one.");
      fillProfile({});
      $("items").replaceChildren();
      $("results-note").textContent = `Nothing to show for user ${userId} until it has a profile.`;
      throw err;
    }
    const source = profile.source === "stored" ? "saved through the API" : "from the training data";
    setUser(userId, `Editing user ${userId}'s profile (${source}).`);
    fillProfile(profile.features);
    await refresh();
  });
}

async function recommendForFeatures() {
  await guarded(async () => {
    setUser(null, "A new user described by these features: nothing is stored. Choose a " +
      "user id to save a profile and record interactions.");
    $("user-id").value = "";
    $("last-action").textContent = "";
    await refresh();
  });
}

async function saveProfile(event) {
  event.preventDefault();
  if (state.user === null) return;
  await guarded(async () => {
    const saved = await api("PUT", `/users/${enc(state.user)}`, { features: profileFeatures() });
    $("profile-note").textContent = `Editing user ${state.user}'s profile (saved through the API).`;
    const described = Object.entries(saved.features).map(([f, v]) => `${f} ${v}`).join(", ");
    $("last-action").textContent = `Saved user ${state.user}'s profile (${described || "empty"})` +
      `.${ignoredText(saved.ignored)} ${CHANGES}`;
    await refresh();
  });
}

// ---- the recommendations ------------------------------------------------------------------

// The catalog's first multi-valued item field whose values GET /model lists whole (MovieLens'
// genre): the "Only" choice filters the list by it (POST /recommend's filter).
function filterField(model) {
  return model.fields.find((f) => f.side === "item" && f.kind === "multihot" && f.size > 0 &&
    f.values.length === f.size);
}

function buildFilter(model) {
  const field = filterField(model);
  state.filterField = field ? field.name : null;
  $("only-label").hidden = !field;
  if (!field) return;
  $("only").replaceChildren(new Option("any", ""), ...field.values.map((v) => new Option(v, v)));
}

async function refresh() {
  const n = Number($("n").value);
  const only = state.filterField ? $("only").value : "";
  const filter = only ? { include: { [state.filterField]: [only] } } : undefined;
  const who = state.user === null ? { user: profileFeatures() } : { user_id: state.user };
  const answer = state.user === null || filter
    ? await api("POST", "/recommend", { ...who, n, details: true, explain: true, filter })
    : await api("GET", `/recommend/${enc(state.user)}?n=${n}&details=true&explain=true`);
  const among = only ? `${pretty(state.filterField)} ${only}` : "the whole catalog";
  state.asked = { who, filter, among, whom: state.user === null
    ? "a new user with these features" : `user ${state.user}` };
  $("results-note").textContent = (state.user === null
    ? `Top ${n} of ${among} for a new user with these features.`
    : `Top ${n} of ${among} for user ${state.user}; items they have seen are left out.`) +
    ignoredText(answer.ignored);
  renderItems(answer.items);
}

function changeBadge(before, item, rank) {
  const badge = el("span", "change");
  const itemId = item.item_id;
  if (isAdded(item)) {
    badge.textContent = "added";
    badge.classList.add("added");
    badge.title = "the item added on this page";
    return badge;
  }
  if (!before.length) return badge;
  const was = before.indexOf(itemId);
  if (was < 0) {
    badge.textContent = "new";
    badge.classList.add("new");
    badge.title = "new in the list";
  } else if (was !== rank) {
    const places = Math.abs(was - rank);
    badge.textContent = `${was > rank ? "▲" : "▼"} ${places}`;
    badge.classList.add(was > rank ? "up" : "down");
    badge.title = `${was > rank ? "up" : "down"} ${places} place${places > 1 ? "s" : ""}`;
  }
  return badge;
}

function renderItems(items) {
  const list = $("items");
  const scores = items.map((i) => i.score);
  const top = Math.max(...scores);
  const span = top - Math.min(...scores) || 1;
  list.replaceChildren();
  items.forEach((item, rank) => {
    const row = el("li", "item");
    row.dataset.itemId = item.item_id;
    const what = el("div", "what");
    what.append(el("span", "title", titleOf(item)), el("span", "meta", metaOf(item)));
    const why = reasonsOf(item.explanation);
    if (why) what.append(why);
    const score = el("div", "score");
    const bar = el("span", "bar");
    bar.style.width = `${Math.round(15 + 85 * (1 - (top - item.score) / span))}%`;
    score.append(el("span", "value", item.score.toFixed(3)), bar);
    score.title = "the model's score: higher ranks first";
    if (isAdded(item)) row.classList.add("added");
    const actions = el("div", "row-actions");
    if (state.user !== null) {
      actions.append(rowButton("seen", "Seen it",
        `Record that user ${state.user} has seen ${titleOf(item)}`, () => recordSeen(item)));
    }
    actions.append(rowButton("similar", "Similar",
      `Show the items most like ${titleOf(item)}`, () => showSimilar(item)));
    actions.append(rowButton("retire", "Retire",
      `Retire ${titleOf(item)} from the catalog, for every user`, () => retire(item)));
    row.append(el("span", "rank", String(rank + 1)), what,
      changeBadge(state.shown, item, rank), score, actions);
    list.append(row);
  });
  if (!items.length) list.append(el("li", "empty", "No items left to recommend."));
  state.shown = items.map((i) => i.item_id);
}

// Why an item is listed: the answer's reasons in words under it, and on hover the exact
// terms its score adds up to, largest first (explain=true; docs/contract.md, Reasons).
function reasonsOf(explanation) {
  if (!explanation) return null;
  if (!explanation.available) {
    const none = el("span", "reasons none", "No reasons: this model's score is not a sum of " +
      "terms");
    none.title = explanation.why;
    return none;
  }
  if (!explanation.reasons.length) return null;
  const line = el("span", "reasons", explanation.reasons.join(" · "));
  const terms = explanation.fields.flatMap((group) => group.terms)
    .sort((a, b) => Math.abs(b.value) - Math.abs(a.value)).slice(0, 6)
    .map((t) => `${t.value >= 0 ? "+" : "−"}${Math.abs(t.value).toFixed(3)}  ${t.text}`);
  line.title = [`score ${explanation.score.toFixed(3)} =`,
    `  ${explanation.item.value.toFixed(3)}  the item itself (the same for every user)`,
    ...terms.map((t) => `  ${t}`),
    "  … and the user's own terms, the same for every item"].join("\n");
  return line;
}

// An item's page: the items most like it under the model (GET /items/{id}/similar).
async function showSimilar(item) {
  const answer = await api("GET", `/items/${enc(item.item_id)}/similar?n=5&details=true`);
  $("similar").hidden = false;
  $("similar-title").textContent = `More like “${titleOf(item)}”`;
  $("similar-note").textContent = answer.measure === "history"
    ? "What people who engaged with it engage with next, as the model ranks it."
    : "The items whose features the model pairs best with this one's.";
  const list = $("similar-items");
  list.replaceChildren();
  for (const other of answer.items) {
    const row = el("li", "item");
    row.dataset.itemId = other.item_id;
    const what = el("div", "what");
    what.append(el("span", "title", titleOf(other)), el("span", "meta", metaOf(other)));
    row.append(what, el("span", "value", other.score.toFixed(3)));
    list.append(row);
  }
  if (!answer.items.length) list.append(el("li", "empty", "No other items."));
}

// A small button of a listed item; disabled while its action runs.
function rowButton(className, text, label, action) {
  const button = el("button", className, text);
  button.type = "button";
  button.setAttribute("aria-label", label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    await guarded(action);
    button.disabled = false;
  });
  return button;
}

async function recordSeen(item) {
  await api("POST", `/users/${enc(state.user)}/interactions`, { item_ids: [item.item_id] });
  $("last-action").textContent = `Recorded that user ${state.user} has seen ` +
    `“${titleOf(item)}”: it is left out of their recommendations from now on. ${CHANGES}`;
  await refresh();
}

// ---- changing the catalog -----------------------------------------------------------------

// How deep the page looks for an added item that the list on screen does not reach: the
// service's default most items per answer (GMLREC_MAX_N).
const DEEPEST = 1000;

function buildItemForm(model) {
  const set = $("add-values");
  const field = filterField(model);
  set.hidden = !field;
  if (field) fillChoices(set, field);
  $("add-note").textContent = (field
    ? `Describe a new item by its ${pretty(field.name).toLowerCase()}: the model ranks it ` +
      "from them at once, with no refit."
    : "A new item is ranked from its features at once, with no refit.") +
    " When the service has API keys this needs a catalog or admin key.";
}

// An id for an item added without one: its title's words, and a little randomness.
function newItemId(title) {
  const words = title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  return `${words.slice(0, 40) || "item"}-${Math.random().toString(36).slice(2, 6)}`;
}

async function addItem(event) {
  event.preventDefault();
  await guarded(async () => {
    const title = $("add-name").value.trim();
    const itemId = $("add-id").value.trim() || newItemId(title);
    const values = state.filterField ? checkedIn($("add-values")) : [];
    const body = { features: values.length ? { [state.filterField]: values } : {} };
    if (title) body.display = { title };
    const saved = await api("PUT", `/items/${enc(itemId)}`, body);
    state.added = { itemId, values };
    $("add-id").value = "";
    const name = title ? `“${title}”` : `item ${itemId}`;
    const described = values.length ? ` (${values.join(", ")})` : "";
    const source = saved.source === "bundle"
      ? " The served bundle holds this id: its own vectors score it."
      : "";
    let said = `Added ${name}${described} as item ${itemId}.${source}` +
      ignoredText(saved.ignored);
    if (state.asked === null) {
      said += " Choose a user to see where it ranks.";
    } else {
      await refresh();
      said += ` ${await rankText(itemId)}`;
    }
    $("last-action").textContent = said;
  });
}

// Where an item ranks in the list on screen's ranking (the same user and filter), deeper
// than the list shows if need be.
async function rankText(itemId) {
  const { who, filter, among, whom } = state.asked;
  const shownAt = state.shown.indexOf(itemId);
  if (shownAt >= 0) return `It ranks #${shownAt + 1} for ${whom}, marked in the list.`;
  let answer;
  try {
    answer = await api("POST", "/recommend", { ...who, n: DEEPEST, filter }, { quiet: true });
  } catch (err) {
    return `Where it ranks could not be read: ${err.message}`;
  }
  const at = answer.items.findIndex((item) => item.item_id === itemId);
  if (at >= 0) {
    return `It ranks #${at + 1} for ${whom}, below the ${state.shown.length} shown.`;
  }
  return answer.items.length < DEEPEST
    ? `It is not in the ranking of ${among} for ${whom}.`
    : `It ranks below #${DEEPEST} for ${whom}.`;
}

async function retire(item) {
  await api("DELETE", `/items/${enc(item.item_id)}`);
  if (isAdded(item)) state.added = null;
  $("last-action").textContent = `Retired “${titleOf(item)}” (item ${item.item_id}): it has ` +
    `left every list, for every user, until a PUT /items/${item.item_id} brings it back. ` +
    CHANGES;
  await refresh();
}

// ---- start --------------------------------------------------------------------------------

async function loadModel() {
  const model = await api("GET", "/model?values=200");
  state.model = model;
  $("model-name").textContent = `${model.name} (${model.kind})`;
  $("model-version").textContent = model.model_version;
  $("model-size").textContent = `${model.items.toLocaleString("en")} items · ` +
    `${model.users.toLocaleString("en")} users`;
  buildProfileForm(model);
  buildFilter(model);
  buildItemForm(model);
  try {
    const users = await api("GET", "/users?limit=12", undefined, { quiet: true });
    showSuggestions(users.user_ids);
  } catch (err) {
    if (err.status !== 403) throw err;
    $("suggestions").replaceChildren(el("li", "hint", "Listing users needs an admin key; " +
      "type a user id above."));
  }
}

async function start() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    guarded(loadModel);
  });
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    chooseUser($("user-id").value.trim());
  });
  $("user-id").addEventListener("input", searchUsers);
  $("profile-form").addEventListener("submit", saveProfile);
  $("try-profile").addEventListener("click", recommendForFeatures);
  $("add-form").addEventListener("submit", addItem);
  for (const id of ["n", "only"]) {
    $(id).addEventListener("change", () => {
      if (!state.shown.length) return;
      state.shown = [];
      guarded(refresh);
    });
  }
  await guarded(loadModel);
  document.body.dataset.ready = "true";
}

start();
