// The Librarian page: sign in, three panes (projects, context blocks, saved prompts) and a
// status pill. Everything shown comes from the server's snapshots through /librarian.js (the
// built @librarian/client), except temporary blocks, which stay in this tab.
import { LibraryClient, devToken } from "/librarian.js";

const $ = (sel, root = document) => root.querySelector(sel);
let lib = null;
const promptSelection = []; // block ids chosen for the prompt form, in order

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
  location.reload();
});

function start(user, token) {
  lib = new LibraryClient({ url: location.origin, getToken: () => token });
  // Exposed for the browser test, which drives the client directly too.
  window.lib = lib;
  let shown = null;
  lib.subscribe(() => {
    const state = lib.getState();
    // A status change alone does not rebuild the panes (it would reset open <select>s).
    if (!shown || shown.version !== state.version || shown.temporaryBlocks !== state.temporaryBlocks) {
      render();
    }
    shown = state;
    renderStatus();
  });
  $("#who").textContent = user;
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#signout").hidden = false;
  renderStatus();
  render();
}

const saved = JSON.parse(sessionStorage.getItem("librarian") || "null");
if (saved?.token) start(saved.user, saved.token);

// ---- status pill --------------------------------------------------------------------------

function secondsSince(t) {
  return Math.max(0, Math.round((Date.now() - t) / 1000));
}

function renderStatus() {
  const pill = $("#status");
  if (!lib) return;
  const { status: s, version, lastSyncedAt } = lib.getState();
  let text;
  switch (s.state) {
    case "connecting": text = "Connecting…"; break;
    case "loading": text = "Loading…"; break;
    case "syncing": text = `Syncing → v${s.targetVersion}`; break;
    case "live": text = `Live v${version} · synced ${secondsSince(lastSyncedAt)}s ago`; break;
    case "error": {
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
    else if (k.startsWith("data-")) node.setAttribute(k, v);
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
