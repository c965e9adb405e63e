// The Librarian page: sign in, three panes (projects, context blocks, saved prompts) and a
// status pill; a library switcher, a share dialog, presence chips and the delivery receipt of
// the last save ("on k of n"). Everything shown comes from the server's snapshots through
// /librarian.js (the built @librarian/client), except temporary blocks, which stay in this tab.
import { LibraryClient, LibraryList, countDelivered, devToken } from "/librarian.js";

const $ = (sel, root = document) => root.querySelector(sel);
let lib = null;
let list = null; // the user's libraries (polled: a library shared with them appears on its own)
let session = null; // { user, token, library } (library null: the user's own)
const promptSelection = []; // block ids chosen for the prompt form, in order
/** The client stopped because the user may not open this library (any more). */
const ACCESS_ENDED = new Set(["access_revoked", "library_not_found"]);

// ---- sign in ------------------------------------------------------------------------------

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const user = $("#signin-user").value.trim();
  let token = $("#signin-token").value.trim();
  setBusy(form, true);
  showError("signin-form", null);
  try {
    if (!token) token = await devToken(location.origin, user);
    sessionStorage.setItem("librarian", JSON.stringify({ user, token }));
    start(user, token);
  } catch (err) {
    if (err.problem?.status === 404) {
      // Not a dev server: ask for a token instead.
      $("#token-label").hidden = false;
      $("#signin-hint").textContent = "This server needs a token from your identity provider.";
    }
    showError("signin-form", err);
  } finally {
    setBusy(form, false);
  }
});

$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem("librarian");
  lib?.close();
  list?.close();
  location.reload();
});

function start(user, token, library = null) {
  session = { user, token, library: null };
  list = new LibraryList({ url: location.origin, getToken: () => token }, { pollIntervalMs: 3000 });
  list.subscribe(renderLibraries);
  $("#who").textContent = user;
  $("#signin").hidden = true;
  $("#signout").hidden = false;
  $("#library-bar").hidden = false;
  openLibrary(library);
}

/** Shows `library` (null: the user's own): a new client for it; the old one closes. */
function openLibrary(library) {
  lib?.close();
  session.library = library;
  sessionStorage.setItem("librarian", JSON.stringify(session));
  lib = new LibraryClient({ url: location.origin, getToken: () => session.token, ...(library ? { library } : {}) });
  // Exposed for the browser test, which drives the client directly too.
  window.lib = lib;
  for (const form of document.querySelectorAll("form.editor")) {
    form.reset();
    setEditing(form, null);
  }
  promptSelection.length = 0;
  let shown = null;
  lib.subscribe(() => {
    const state = lib.getState();
    // A status change alone does not rebuild the panes (it would reset open <select>s).
    if (!shown || shown.version !== state.version || shown.temporaryBlocks !== state.temporaryBlocks) {
      render();
    }
    if (!shown || shown.members !== state.members || shown.role !== state.role || shown.libraryId !== state.libraryId) {
      renderMembers();
      renderLibraries();
    }
    if (!shown || shown.presence !== state.presence || shown.lastWriteVersion !== state.lastWriteVersion) {
      renderPresence();
    }
    shown = state;
    renderStatus();
  });
  renderStatus();
  render();
  renderMembers();
  renderLibraries();
  renderPresence();
}

const saved = JSON.parse(sessionStorage.getItem("librarian") || "null");
if (saved?.token) start(saved.user, saved.token, saved.library ?? null);

// ---- libraries: switcher, new library ------------------------------------------------------

function renderLibraries() {
  if (!list || !lib) return;
  const { libraries, isLoading } = list.getState();
  const select = $("#library-select");
  const own = libraries[0]?.id ?? null;
  const current = session.library ?? lib.getState().libraryId ?? own ?? "";
  const options = libraries.map((l, i) =>
    el("option", { value: l.id, "data-role": l.role,
      textContent: i === 0 ? `${l.name || "My library"} (mine)` : l.role === "owner" ? l.name : `${l.name} · ${l.owner_id}` }));
  if (!libraries.some((l) => l.id === current)) {
    options.push(el("option", { value: current, textContent: isLoading ? "Loading…" : libraries.length ? "(not in your libraries)" : "My library" }));
  }
  select.replaceChildren(...options);
  select.value = current;
  const role = lib.getState().role;
  const badge = $("#role");
  badge.dataset.role = role || "";
  badge.textContent = role === "viewer" ? "viewer · read only" : role || "";
}

$("#library-select").addEventListener("change", (event) => {
  const id = event.currentTarget.value;
  const own = list?.getState().libraries[0]?.id;
  openLibrary(id === own ? null : id);
});

$("#new-library").addEventListener("click", () => {
  $("#library-form").hidden = false;
  $("#new-library").hidden = true;
  $("#library-name").focus();
});

$("#library-form .cancel").addEventListener("click", () => {
  $("#library-form").reset();
  $("#library-form").hidden = true;
  $("#new-library").hidden = false;
  showError("library-form", null);
});

$("#library-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  setBusy(form, true);
  showError("library-form", null);
  try {
    const made = await list.create($("#library-name").value.trim());
    form.reset();
    form.hidden = true;
    $("#new-library").hidden = false;
    openLibrary(made.id);
  } catch (err) {
    showError("library-form", err);
  } finally {
    setBusy(form, false);
  }
});

$("#back-to-own").addEventListener("click", () => openLibrary(null));

// ---- presence and the last save's receipt --------------------------------------------------

function renderPresence() {
  if (!lib) return;
  const { presence, lastWriteVersion } = lib.getState();
  const byUser = new Map();
  for (const s of presence) byUser.set(s.user_id, (byUser.get(s.user_id) || 0) + 1);
  const people = [...byUser].sort(([a], [b]) => (a === session.user ? -1 : b === session.user ? 1 : a.localeCompare(b)));
  $("#presence").replaceChildren(...people.map(([id, n]) =>
    el("li", { class: id === session.user ? "chip me" : "chip", "data-user": id, title: `${n} session${n === 1 ? "" : "s"}` },
      el("span", { class: "avatar", textContent: id.slice(0, 1).toUpperCase() }),
      id === session.user ? `${id} (you)` : id,
      n > 1 ? el("span", { class: "count", textContent: `×${n}` }) : null)));
  const receipt = $("#receipt");
  const { held, total } = lastWriteVersion === null ? { held: 0, total: 0 } : countDelivered(presence, lastWriteVersion);
  receipt.hidden = lastWriteVersion === null || total === 0;
  receipt.className = held >= total ? "all" : "";
  receipt.dataset.held = String(held);
  receipt.dataset.total = String(total);
  receipt.textContent = `Saved v${lastWriteVersion} · on ${held} of ${total}`;
  receipt.title = `Your last save is held by ${held} of the ${total} sessions open on this library`;
}

// ---- sharing: members ----------------------------------------------------------------------

$("#share").addEventListener("click", () => {
  renderMembers();
  showError("share-form", null);
  showError("share-leave", null);
  $("#share-dialog").showModal();
});
$("#share-close").addEventListener("click", () => $("#share-dialog").close());

function renderMembers() {
  if (!lib) return;
  const { members, role } = lib.getState();
  const owner = role === "owner";
  $("#members").replaceChildren(...members.map((m) => {
    const li = el("li", { "data-user": m.user_id, "data-role": m.role },
      el("span", { class: "avatar", textContent: m.user_id.slice(0, 1).toUpperCase() }),
      el("span", { class: "name", textContent: m.user_id === session.user ? `${m.user_id} (you)` : m.user_id }));
    if (owner && m.role !== "owner") {
      const select = el("select", { "aria-label": `Role of ${m.user_id}` },
        el("option", { value: "editor", textContent: "editor" }), el("option", { value: "viewer", textContent: "viewer" }));
      select.value = m.role;
      select.addEventListener("change", () => act(select, "share-form", () => lib.setMember(m.user_id, select.value)));
      li.append(select, el("button", { class: "remove", type: "button", textContent: "Remove",
        onclick: (e) => act(e.currentTarget, "share-form", () => lib.removeMember(m.user_id)) }));
    } else {
      li.append(el("span", { class: "role", "data-role": m.role, textContent: m.role }));
    }
    return li;
  }));
  $("#share-form").hidden = !owner;
  $("#share-leave").hidden = owner || role === null;
}

$("#share-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = event.currentTarget;
  setBusy(f, true);
  showError("share-form", null);
  try {
    // Resolves once this page's library lists the member.
    await lib.setMember($("#share-user").value.trim(), $("#share-role").value);
    $("#share-user").value = "";
  } catch (err) {
    showError("share-form", err);
  } finally {
    setBusy(f, false);
  }
});

$("#leave").addEventListener("click", (event) => act(event.currentTarget, "share-leave", async () => {
  await lib.removeMember(session.user);
  $("#share-dialog").close();
  await list.refresh();
  openLibrary(null);
}));

// ---- status pill --------------------------------------------------------------------------

function secondsSince(t) {
  return Math.max(0, Math.round((Date.now() - t) / 1000));
}

function renderStatus() {
  const pill = $("#status");
  if (!lib) return;
  const { status: s, version, lastSyncedAt } = lib.getState();
  const ended = s.state === "error" && ACCESS_ENDED.has(s.code);
  $("#revoked").hidden = !ended;
  $("#app").hidden = ended;
  $("#share").hidden = ended;
  if (ended) {
    $("#revoked h2").textContent = s.code === "access_revoked" ? "Access revoked" : "No such library";
    $("#revoked-text").textContent = s.code === "access_revoked"
      ? "You are no longer a member of this library (or it was deleted). Nothing of it reaches this page any more."
      : "This library does not exist, or you are not a member of it.";
    if ($("#share-dialog").open) $("#share-dialog").close();
  }
  let text;
  switch (s.state) {
    case "connecting": text = "Connecting…"; break;
    case "loading": text = "Loading…"; break;
    case "syncing": text = `Syncing → v${s.targetVersion}`; break;
    case "live": text = `Live v${version} · synced ${secondsSince(lastSyncedAt)}s ago`; break;
    case "error": {
      if (s.retryAt === null) {
        text = s.code === "access_revoked" ? "Access revoked" : `Error: ${s.message}`;
        break;
      }
      const left = Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000));
      text = `Error: ${s.message}, retrying in ${left}s`;
      break;
    }
    case "offline": text = "Offline: waiting for the network"; break;
    default: text = s.state;
  }
  pill.dataset.state = s.state;
  pill.textContent = text;
}
setInterval(renderStatus, 1000);

// ---- rendering ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function render() {
  const state = lib.getState();
  // The panes list saved and temporary blocks together; temporary ones are marked.
  const view = {
    projects: state.projects,
    context_blocks: [...state.contextBlocks, ...state.temporaryBlocks],
    saved_prompts: state.savedPrompts,
  };
  renderProjects(view);
  renderBlocks(view);
  renderPrompts(view);
}

function projectDepths(projects) {
  const byParent = new Map();
  for (const p of projects) {
    const key = p.parent_id || "";
    if (!byParent.has(key)) byParent.set(key, []);
    byParent.get(key).push(p);
  }
  const ordered = [];
  const walk = (parent, depth) => {
    for (const p of byParent.get(parent) || []) {
      ordered.push([p, depth]);
      walk(p.id, depth + 1);
    }
  };
  walk("", 0);
  return { byParent, ordered };
}

function renderProjects(view) {
  const { byParent, ordered } = projectDepths(view.projects);
  const tree = (parent) => {
    const ul = el("ul");
    for (const p of byParent.get(parent) || []) {
      const li = el("li", { class: "item", "data-id": p.id, "data-name": p.name },
        el("div", { class: "row" },
          el("span", { class: "name", textContent: p.name }),
          el("button", { class: "edit", textContent: "Edit", onclick: () => editProject(p) }),
          el("button", { class: "delete", textContent: "Delete",
            onclick: (e) => act(e.currentTarget, "project-form", () => lib.deleteProject(p.id, { ifVersion: p.version })) })),
        p.description ? el("div", { class: "meta", textContent: p.description }) : null);
      if (byParent.has(p.id)) li.append(tree(p.id));
      ul.append(li);
    }
    return ul;
  };
  $("#project-tree").replaceChildren(...tree("").children);
  for (const select of document.querySelectorAll(".project-select")) {
    const current = select.value;
    select.replaceChildren(el("option", { value: "", textContent: "(none)" }),
      ...ordered.map(([p, depth]) => el("option", { value: p.id, textContent: `${"— ".repeat(depth)}${p.name}` })));
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
  }
}

function renderBlocks(view) {
  const items = view.context_blocks.map((b) => {
    const buttons = b.temporary
      ? [el("button", { class: "save", textContent: "Save",
           onclick: (e) => act(e.currentTarget, "block-form", () => lib.saveTemporaryBlock(b.id)) }),
         el("button", { class: "edit", textContent: "Edit", onclick: () => editBlock(b) }),
         el("button", { class: "discard", textContent: "Discard", onclick: () => lib.removeTemporaryBlock(b.id) })]
      : [el("button", { class: "edit", textContent: "Edit", onclick: () => editBlock(b) }),
         el("button", { class: "delete", textContent: "Delete",
           onclick: (e) => act(e.currentTarget, "block-form", () => lib.deleteContextBlock(b.id, { ifVersion: b.version })) })];
    return el("li", { class: `item${b.temporary ? " temporary" : ""}`, "data-id": b.id, "data-title": b.title },
      el("div", { class: "row" },
        el("span", { class: "name", textContent: b.title }),
        b.temporary ? el("span", { class: "badge", textContent: "temporary" }) : null,
        ...buttons),
      el("div", { class: "meta" }, ...(b.tags || []).map((t) => el("span", { class: "tag", textContent: t })),
        b.content ? ` ${b.content.slice(0, 80)}` : ""));
  });
  $("#block-list").replaceChildren(...items);

  // The prompt form offers saved blocks only (a prompt cannot point at a temporary one).
  const savedBlocks = view.context_blocks.filter((b) => !b.temporary);
  const known = new Set(savedBlocks.map((b) => b.id));
  for (let i = promptSelection.length - 1; i >= 0; i--) if (!known.has(promptSelection[i])) promptSelection.splice(i, 1);
  $("#prompt-blocks").replaceChildren(...savedBlocks.map((b) => {
    const box = el("input", { type: "checkbox", value: b.id, checked: promptSelection.includes(b.id) });
    box.addEventListener("change", () => {
      const at = promptSelection.indexOf(b.id);
      if (box.checked && at < 0) promptSelection.push(b.id);
      if (!box.checked && at >= 0) promptSelection.splice(at, 1);
    });
    return el("label", {}, box, b.title);
  }));
}

function renderPrompts(view) {
  const titles = new Map(view.context_blocks.map((b) => [b.id, b.title]));
  $("#prompt-list").replaceChildren(...view.saved_prompts.map((p) =>
    el("li", { class: "item", "data-id": p.id, "data-title": p.title },
      el("div", { class: "row" },
        el("span", { class: "name", textContent: p.title }),
        el("button", { class: "edit", textContent: "Edit", onclick: () => editPrompt(p) }),
        el("button", { class: "delete", textContent: "Delete",
          onclick: (e) => act(e.currentTarget, "prompt-form", () => lib.deleteSavedPrompt(p.id, { ifVersion: p.version })) })),
      el("div", { class: "meta",
        textContent: p.context_block_ids.length
          ? `Blocks: ${p.context_block_ids.map((id) => titles.get(id) || "?").join(" → ")}`
          : "No blocks" }))));
}

// ---- editing ------------------------------------------------------------------------------

function setEditing(form, entity) {
  const h3 = $("h3", form);
  form.dataset.editId = entity ? entity.id : "";
  form.dataset.version = entity && entity.version != null ? String(entity.version) : "";
  form.dataset.temporary = entity?.temporary ? "1" : "";
  h3.textContent = entity ? h3.dataset.titleEdit : h3.dataset.titleCreate;
  $("button[type=submit]", form).textContent = entity ? "Save" : "Create";
  $(".cancel", form).hidden = !entity;
  showError(form.id, null);
}

for (const form of document.querySelectorAll("form.editor")) {
  $(".cancel", form).addEventListener("click", () => {
    form.reset();
    if (form.id === "prompt-form") { promptSelection.length = 0; render(); }
    setEditing(form, null);
  });
}

function editProject(p) {
  const f = $("#project-form");
  f.name.value = p.name;
  f.description.value = p.description;
  f.parent_id.value = p.parent_id || "";
  setEditing(f, p);
}

function editBlock(b) {
  const f = $("#block-form");
  f.title.value = b.title;
  f.content.value = b.content;
  f.tags.value = (b.tags || []).join(", ");
  f.project_id.value = b.project_id || "";
  f.temporary.checked = !!b.temporary;
  setEditing(f, b);
}

function editPrompt(p) {
  const f = $("#prompt-form");
  f.title.value = p.title;
  f.content.value = p.content;
  f.project_id.value = p.project_id || "";
  promptSelection.splice(0, promptSelection.length, ...p.context_block_ids);
  setEditing(f, p);
  render();
}

// ---- submitting ---------------------------------------------------------------------------

function ifVersion(form) {
  return form.dataset.version ? { ifVersion: Number(form.dataset.version) } : undefined;
}

$("#project-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const f = event.currentTarget;
  const data = { name: f.name.value, description: f.description.value, parent_id: f.parent_id.value || null };
  submit(f, () => f.dataset.editId
    ? lib.updateProject(f.dataset.editId, data, ifVersion(f))
    : lib.createProject(data));
});

$("#block-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const f = event.currentTarget;
  const data = {
    title: f.title.value,
    content: f.content.value,
    tags: f.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    project_id: f.project_id.value || null,
  };
  if (f.dataset.temporary) {
    lib.updateTemporaryBlock(f.dataset.editId, data);
    f.reset();
    setEditing(f, null);
    return;
  }
  if (f.temporary.checked && !f.dataset.editId) {
    lib.addTemporaryBlock(data);
    f.reset();
    return;
  }
  submit(f, () => f.dataset.editId
    ? lib.updateContextBlock(f.dataset.editId, data, ifVersion(f))
    : lib.createContextBlock(data));
});

$("#prompt-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const f = event.currentTarget;
  const data = {
    title: f.title.value,
    content: f.content.value,
    project_id: f.project_id.value || null,
    context_block_ids: [...promptSelection],
  };
  submit(f, () => f.dataset.editId
    ? lib.updateSavedPrompt(f.dataset.editId, data, ifVersion(f))
    : lib.createSavedPrompt(data), () => { promptSelection.length = 0; render(); });
});

/** Runs a form's mutation: controls disabled until the server confirmed it into a snapshot. */
async function submit(form, run, after) {
  setBusy(form, true);
  showError(form.id, null);
  try {
    await run();
    form.reset();
    setEditing(form, null);
    after?.();
  } catch (err) {
    showError(form.id, err);
  } finally {
    setBusy(form, false);
  }
}

/** Runs an item button's mutation (delete, save); errors show next to that pane's form. */
async function act(button, formId, run) {
  button.disabled = true;
  showError(formId, null);
  try {
    await run();
  } catch (err) {
    showError(formId, err);
    button.disabled = false;
  }
}

function setBusy(form, busy) {
  for (const c of form.querySelectorAll("button, input, textarea, select")) c.disabled = busy;
  form.dataset.pending = busy ? "1" : "";
}

function showError(formId, err) {
  const out = document.querySelector(`[data-error-for="${formId}"]`);
  if (!out) return;
  if (!err) { out.textContent = ""; return; }
  const p = err.problem || {};
  const fields = (p.errors || []).map((e) => `${e.field}: ${e.message}`);
  out.textContent = [p.detail || err.message, ...fields.filter((f) => !(p.detail || "").includes(f))].join("\n");
}
