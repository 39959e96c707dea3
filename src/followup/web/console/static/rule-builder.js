// The rule builder: rows of field / operator / value in "all of" / "any of" groups, each of which
// may be negated ("not"), and segment references. It edits the rule tree the API takes and writes
// it, as JSON, into the form's own textarea: without this script the textarea is the editor, and
// the server validates whatever it receives. (No inline script: the console's CSP forbids it.)
//
// Also here: the strategy form shows only the parts that apply to the chosen kind.
(function () {
  "use strict";
  var counter = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  // ── values: what a person types, and the JSON the rule holds ──────────────────────────────
  function looksTyped(text) {
    return /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text) || text === "true" || text === "false" || /^["\[]/.test(text);
  }
  function showScalar(value) {
    if (typeof value === "string") return looksTyped(value) || value.indexOf(",") >= 0 ? JSON.stringify(value) : value;
    return String(value);
  }
  function readScalar(text) {
    text = text.trim();
    if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)) return Number(text);
    if (text === "true") return true;
    if (text === "false") return false;
    if (text.charAt(0) === '"') { try { return JSON.parse(text); } catch (e) { return text; } }
    return text;
  }
  function splitList(text) {
    var items = [], current = "", quoted = false;
    for (var i = 0; i < text.length; i++) {
      var ch = text.charAt(i);
      if (ch === '"' && text.charAt(i - 1) !== "\\") quoted = !quoted;
      if (ch === "," && !quoted) { items.push(current); current = ""; } else current += ch;
    }
    items.push(current);
    return items.map(function (item) { return item.trim(); }).filter(function (item) { return item !== ""; });
  }
  function showValue(op, value) {
    if (value === undefined || value === null) return op === "exists" ? "true" : "";
    if (Array.isArray(value)) return value.map(showScalar).join(", ");
    return showScalar(value);
  }
  function readValue(op, text) {
    if (op === "exists") return text !== "false";
    if (op === "in" || op === "not_in") {
      if (text.trim().charAt(0) === "[") { try { return JSON.parse(text); } catch (e) { /* a list typed by hand */ } }
      return splitList(text).map(readScalar);
    }
    return readScalar(text);
  }

  // ── the tree as items, and back ───────────────────────────────────────────────────────────
  function group(mode, children) { return { type: "group", mode: mode, negate: false, children: children }; }
  function toItem(node) {
    if (node && typeof node === "object" && !Array.isArray(node)) {
      if ("not" in node) {
        var inner = toItem(node.not);
        if (inner.negate) { inner = group("all", [inner]); }
        inner.negate = true;
        return inner;
      }
      if (Array.isArray(node.all)) return group("all", node.all.map(toItem));
      if (Array.isArray(node.any)) return group("any", node.any.map(toItem));
      if ("segment" in node) return { type: "segment", negate: false, key: String(node.segment) };
      return { type: "condition", negate: false, field: node.field || "", op: node.op || "eq", text: showValue(node.op, node.value) };
    }
    return { type: "condition", negate: false, field: "", op: "eq", text: "" };
  }
  function toNode(item) {
    var node;
    if (item.type === "group") {
      var children = item.children.map(toNode).filter(function (child) { return child !== null; });
      if (!children.length) return null;
      node = {};
      node[item.mode] = children;
    } else if (item.type === "segment") {
      node = { segment: item.key };
    } else {
      node = { field: item.field.trim(), op: item.op, value: readValue(item.op, item.text) };
    }
    return item.negate ? { not: node } : node;
  }

  function Builder(holder) {
    this.holder = holder;
    this.textarea = document.getElementById(holder.getAttribute("data-for"));
    this.operators = JSON.parse(holder.getAttribute("data-operators"));
    this.segments = JSON.parse(holder.getAttribute("data-segments"));
    this.fields = JSON.parse(holder.getAttribute("data-fields"));
    this.fieldsByKind = holder.hasAttribute("data-fields-by-kind") ? JSON.parse(holder.getAttribute("data-fields-by-kind")) : null;
    this.listId = "rule-fields-" + (++counter);
    this.datalist = el("datalist", { id: this.listId });
    this.note = el("p", { class: "rb-note", role: "status" });
    this.load();
    var self = this;
    this.textarea.addEventListener("change", function () { self.load(); self.render(); });
    var kind = document.getElementById("kind");
    if (this.fieldsByKind && kind) {
      var pick = function () { self.fields = self.fieldsByKind[kind.value] || self.fields; self.fillList(); };
      kind.addEventListener("change", pick);
      pick();
    }
    this.fillList();
    this.render();
    var details = this.textarea.closest("details");
    if (details) details.removeAttribute("open"); // the builder is the editor now; the JSON stays one click away
  }
  Builder.prototype.fillList = function () {
    var list = this.datalist;
    while (list.firstChild) list.removeChild(list.firstChild);
    this.fields.forEach(function (field) { list.appendChild(el("option", { value: field })); });
  };
  Builder.prototype.load = function () {
    var text = this.textarea.value.trim();
    this.note.textContent = "";
    this.wrapped = false;
    if (!text || text === "null") { this.root = group("all", []); return; }
    try {
      var item = toItem(JSON.parse(text));
      if (item.type === "group") { this.root = item; } else { this.root = group("all", [item]); this.wrapped = true; }
    } catch (e) {
      this.root = this.root || group("all", []);
      this.note.textContent = "The JSON below does not parse; the builder shows the last rule that did.";
    }
  };
  Builder.prototype.write = function () {
    var root = this.root;
    var node = toNode(root);
    if (node && this.wrapped && root.children.length === 1 && !root.negate && root.mode === "all") node = toNode(root.children[0]);
    this.textarea.value = node === null ? "" : JSON.stringify(node, null, 2);
    this.note.textContent = "";
  };
  Builder.prototype.changed = function (rerender) {
    this.write();
    if (rerender) this.render();
  };
  Builder.prototype.render = function () {
    while (this.holder.firstChild) this.holder.removeChild(this.holder.firstChild);
    this.holder.appendChild(this.datalist);
    this.holder.appendChild(this.renderGroup(this.root, null));
    this.holder.appendChild(this.note);
  };
  Builder.prototype.notBox = function (item) {
    var self = this;
    var box = el("input", { type: "checkbox", "aria-label": "Not" });
    box.checked = item.negate;
    box.addEventListener("change", function () { item.negate = box.checked; self.changed(false); });
    return el("label", { class: "rb-not" }, [box, el("span", { text: "not" })]);
  };
  Builder.prototype.removeButton = function (item, parent, label) {
    var self = this;
    var button = el("button", { type: "button", class: "rb-remove", "aria-label": label, title: label, text: "×" });
    button.addEventListener("click", function () {
      parent.children.splice(parent.children.indexOf(item), 1);
      self.changed(true);
    });
    return button;
  };
  Builder.prototype.renderGroup = function (item, parent) {
    var self = this;
    var mode = el("select", { "aria-label": "Group" }, [
      el("option", { value: "all", text: "all of" }),
      el("option", { value: "any", text: "any of" }),
    ]);
    mode.value = item.mode;
    mode.addEventListener("change", function () { item.mode = mode.value; self.changed(false); });
    var head = el("div", { class: "rb-head" }, [self.notBox(item), mode, el("span", { class: "muted", text: "these:" })]);
    if (parent) head.appendChild(self.removeButton(item, parent, "Remove group"));
    var children = el("div", { class: "rb-children" });
    item.children.forEach(function (child) {
      children.appendChild(child.type === "group" ? self.renderGroup(child, item) : self.renderRow(child, item));
    });
    if (!item.children.length) children.appendChild(el("p", { class: "muted rb-empty", text: parent ? "An empty group is left out." : "No condition: everyone." }));
    var add = function (label, make) {
      var button = el("button", { type: "button", class: "rb-add", text: label });
      button.addEventListener("click", function () { item.children.push(make()); self.changed(true); });
      return button;
    };
    var adders = el("div", { class: "rb-adders" }, [
      add("+ Condition", function () { return { type: "condition", negate: false, field: "", op: "eq", text: "" }; }),
      add("+ Group", function () { return group(item.mode === "all" ? "any" : "all", []); }),
    ]);
    if (self.segments.length) {
      adders.appendChild(add("+ Segment", function () { return { type: "segment", negate: false, key: self.segments[0] }; }));
    }
    return el("div", { class: "rb-group" + (parent ? " nested" : "") }, [head, children, adders]);
  };
  Builder.prototype.renderRow = function (item, parent) {
    var self = this;
    if (item.type === "segment") {
      var choice = el("select", { "aria-label": "Segment" });
      var keys = self.segments.indexOf(item.key) >= 0 ? self.segments : [item.key].concat(self.segments);
      keys.forEach(function (key) { choice.appendChild(el("option", { value: key, text: key })); });
      choice.value = item.key;
      choice.addEventListener("change", function () { item.key = choice.value; self.changed(false); });
      return el("div", { class: "rb-row" }, [self.notBox(item), el("span", { class: "rb-in", text: "in segment" }), choice, self.removeButton(item, parent, "Remove segment")]);
    }
    var field = el("input", { class: "rb-field", list: self.listId, "aria-label": "Field", placeholder: "customer.value_tier", spellcheck: "false" });
    field.value = item.field;
    field.addEventListener("input", function () { item.field = field.value; self.changed(false); });
    var op = el("select", { class: "rb-op", "aria-label": "Operator" });
    self.operators.forEach(function (name) { op.appendChild(el("option", { value: name, text: name })); });
    op.value = item.op;
    var value;
    if (item.op === "exists") {
      value = el("select", { class: "rb-value", "aria-label": "Value" }, [
        el("option", { value: "true", text: "true" }),
        el("option", { value: "false", text: "false" }),
      ]);
      value.value = item.text === "false" ? "false" : "true";
      item.text = value.value;
      value.addEventListener("change", function () { item.text = value.value; self.changed(false); });
    } else {
      var hint = item.op === "in" || item.op === "not_in" ? "a, b, c" : "value";
      value = el("input", { class: "rb-value", "aria-label": "Value", placeholder: hint, spellcheck: "false" });
      value.value = item.text;
      value.addEventListener("input", function () { item.text = value.value; self.changed(false); });
    }
    op.addEventListener("change", function () {
      var wasExists = item.op === "exists";
      item.op = op.value;
      if (wasExists !== (item.op === "exists")) item.text = item.op === "exists" ? "true" : "";
      self.changed(true);
    });
    return el("div", { class: "rb-row" }, [self.notBox(item), field, op, value, self.removeButton(item, parent, "Remove condition")]);
  };

  function showKind() {
    var kind = document.getElementById("kind");
    if (!kind) return;
    Array.prototype.forEach.call(document.querySelectorAll("[data-kinds]"), function (part) {
      part.hidden = part.getAttribute("data-kinds").split(" ").indexOf(kind.value) < 0;
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".rule-builder"), function (holder) { new Builder(holder); });
    var kind = document.getElementById("kind");
    if (kind) { kind.addEventListener("change", showKind); showKind(); }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
