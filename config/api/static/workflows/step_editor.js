// The workflow form's step editor. Each step's config is the form made from its type's schema
// (django-jsonform's React form, bundled: no CDN), swapped for the new type's when the type
// changes, or the same config as JSON text ("Edit as JSON"; the triggers have one too). The
// text area is what is posted: the config as the API takes it. Before the form is sent, and as staff edit, the steps and
// triggers are checked by the server's own check (the services the API and the save use), and
// its messages are shown next to each step; the form is not sent while there is a problem.
(function () {
  "use strict";
  var types = {};
  var checkUrl = "";
  var workflowId = "";
  var counter = 0;
  var timer = null;
  var SIMPLE_TYPES = ["string", "number", "integer", "boolean", "array of strings"];

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  // A JSON Schema made of plain typed fields, and those fields (null for any other schema).
  function fieldsSchema(fields) {
    var properties = {};
    var required = [];
    fields.forEach(function (field) {
      if (!isObject(field) || !field.name) return;
      var spec = field.type === "array of strings"
        ? { type: "array", items: { type: "string" } }
        : { type: field.type || "string" };
      if (field.description) spec.description = field.description;
      properties[field.name] = spec;
      if (field.required) required.push(field.name);
    });
    var schema = { type: "object", properties: properties };
    if (required.length) schema.required = required;
    return schema;
  }
  function schemaFields(schema) {
    if (!isObject(schema) || schema.type !== "object" || !isObject(schema.properties)) return null;
    var required = Array.isArray(schema.required) ? schema.required : [];
    var fields = Object.keys(schema.properties).map(function (name) {
      var spec = schema.properties[name] || {};
      var type = spec.type === "array" && isObject(spec.items) && spec.items.type === "string"
        ? "array of strings" : spec.type;
      return { name: name, type: type, description: spec.description || "",
               required: required.indexOf(name) !== -1 };
    });
    var plain = fields.every(function (f) { return SIMPLE_TYPES.indexOf(f.type) !== -1; });
    return plain && canonical(fieldsSchema(fields)) === canonical(schema) ? fields : null;
  }
  // JSON with the keys of every object sorted (the database keeps its own order of keys).
  function canonical(value) {
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (!isObject(value)) return JSON.stringify(value);
    return "{" + Object.keys(value).sort().map(function (key) {
      return JSON.stringify(key) + ":" + canonical(value[key]);
    }).join(",") + "}";
  }

  // A config as the form shows it, and back: JSON text for objects of any shape, a list of
  // fields for a simple JSON Schema; optional values left empty are dropped on the way back.
  function toForm(info, config) {
    if (!isObject(config)) return {};
    var data = Object.assign({}, config);
    info.jsonSchema.forEach(function (name) {
      if (!(name in data)) return;
      var fields = schemaFields(data[name]);
      data[name] = fields ? { fields: fields } : JSON.stringify(data[name], null, 2);
    });
    info.jsonText.forEach(function (name) {
      if (name in data && typeof data[name] !== "string") {
        data[name] = JSON.stringify(data[name], null, 2);
      }
    });
    return data;
  }
  function pruned(spec, value) {
    if (Array.isArray(value)) {
      return value.map(function (item) { return pruned((spec && spec.items) || {}, item); });
    }
    if (!isObject(value) || !spec || !isObject(spec.properties)) return value;
    var kept = {};
    Object.keys(value).forEach(function (name) {
      var inner = spec.properties[name] || {};
      var item = value[name];
      if ((item === "" || item === null) && !inner.required) return;
      kept[name] = pruned(inner, item);
    });
    return kept;
  }
  function fromForm(info, data) {
    if (!isObject(data)) return data;
    var config = pruned(info.schema, data);
    info.jsonSchema.concat(info.jsonText).forEach(function (name) {
      var value = config[name];
      if (isObject(value) && Array.isArray(value.fields)) {
        if (value.fields.length) config[name] = fieldsSchema(value.fields);
        else delete config[name];
      } else if (typeof value === "string") {
        if (!value.trim()) {
          delete config[name];
          return;
        }
        try {
          config[name] = JSON.parse(value);
        } catch (error) {
          // kept as typed: the check names it
        }
      }
    });
    return config;
  }

  function typeSelect(row) { return row.querySelector("select[id$='-type']"); }
  function configArea(row) { return row.querySelector("textarea.step-config-json"); }

  function wire(row) {
    var select = typeSelect(row);
    var area = configArea(row);
    if (!select || !area || row.dataset.editorWired) return;
    row.dataset.editorWired = "1";
    var box = area.closest(".step-config");
    var toggle = box.querySelector(".step-config-view");
    var asJson = false;

    function parsed() {
      if (!area.value.trim() || area.value.trim() === "null") return null;
      try {
        return JSON.parse(area.value);
      } catch (error) {
        return undefined;
      }
    }
    function showForm() {
      var info = types[select.value];
      var container = document.createElement("div");
      container.className = "step-config-form";
      container.id = area.id + "_form_" + (++counter);
      row.stepForm = null;
      container.setAttribute("data-django-jsonform-container", "true");
      box.querySelector(".step-config-form").replaceWith(container);
      asJson = false;
      if (!info) { // no type chosen yet: nothing to edit
        container.hidden = true;
        area.hidden = true;
        toggle.hidden = true;
        return;
      }
      var config = parsed();
      var form = reactJsonForm.createForm({
        containerId: container.id,
        dataInputId: area.id + "_form_data",
        schema: info.schema,
        data: toForm(info, config === null ? info.example : config),
        errorMap: {},
        fileHandler: "",
        fileHandlerArgs: {},
        readonly: false,
      });
      row.stepForm = form;
      form.addEventListener("change", function (event) {
        // A form hidden for JSON editing, or replaced, may still report a change (React
        // renders it after the click that hid it): what is typed as JSON is not overwritten.
        if (asJson || row.stepForm !== form) return;
        area.value = JSON.stringify(fromForm(info, event.data), null, 2);
        scheduleCheck();
      });
      form.render();
      area.hidden = true;
      toggle.hidden = false;
      toggle.textContent = "Edit as JSON";
    }
    function showJson() {
      asJson = true;
      box.querySelector(".step-config-form").hidden = true;
      area.hidden = false;
      toggle.textContent = "Edit in the form";
    }

    select.addEventListener("change", function () {
      // A config is its type's: a new type starts from its own example.
      var info = types[select.value];
      area.value = info ? JSON.stringify(info.example, null, 2) : "";
      if (asJson && info) showJson();
      else showForm();
      scheduleCheck();
    });
    toggle.addEventListener("click", function () {
      if (!asJson) {
        showJson();
        return;
      }
      if (parsed() === undefined) {
        showProblems([{ step: stepRows().indexOf(row), field: "config",
                        text: "Enter a valid JSON." }]);
        return;
      }
      showForm();
    });
    area.addEventListener("input", scheduleCheck);
    if (select.value && parsed() !== undefined) showForm();
    else if (select.value) showJson();
    else showForm();
  }

  // The triggers (django-jsonform's own editor) get a JSON view too: the triggers as the API
  // takes them, options left empty dropped. Back in the form, a new form shows what was typed.
  var triggersJson = null;
  function compact(value) {
    if (Array.isArray(value)) return value.map(compact);
    if (!isObject(value)) return value;
    var kept = {};
    Object.keys(value).forEach(function (key) {
      var item = compact(value[key]);
      var empty = item === "" || item === null || (Array.isArray(item) && !item.length) ||
        (isObject(item) && !Object.keys(item).length);
      if (!empty) kept[key] = item;
    });
    return kept;
  }
  function wireTriggers() {
    var input = document.getElementById("id_triggers");
    if (!input || !input.dataset.djangoJsonform) return;
    var schema = JSON.parse(input.dataset.djangoJsonform).schema;
    var text = document.createElement("textarea");
    text.className = "vLargeTextField triggers-json";
    text.rows = 6;
    text.hidden = true;
    text.setAttribute("aria-label", "Triggers as JSON");
    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "button triggers-view";
    toggle.textContent = "Edit as JSON";
    var tools = document.createElement("p");
    tools.className = "step-config-tools";
    tools.appendChild(toggle);
    input.parentNode.insertBefore(text, input.nextSibling);
    input.parentNode.insertBefore(tools, text.nextSibling);
    function fromText() {
      try {
        input.value = JSON.stringify(JSON.parse(text.value || "[]"));
        triggersJson = null;
      } catch (error) {
        triggersJson = "Enter a valid JSON.";
      }
    }
    text.addEventListener("input", function () {
      fromText();
      scheduleCheck();
    });
    // The form hidden for JSON editing writes the field itself when it reports a change,
    // which it may do after the click that hid it: what is saved is the JSON shown.
    input.form.addEventListener("submit", function () {
      if (!text.hidden) fromText();
    });
    toggle.addEventListener("click", function () {
      var container = input.previousElementSibling;
      if (text.hidden) {
        var current = [];
        try { current = compact(JSON.parse(input.value || "[]")); } catch (error) { /* empty */ }
        text.value = JSON.stringify(current, null, 2);
        text.hidden = false;
        container.hidden = true;
        toggle.textContent = "Edit in the form";
        return;
      }
      if (triggersJson) return;
      var fresh = document.createElement("div");
      fresh.id = input.id + "_jsonform_" + (++counter);
      fresh.setAttribute("data-django-jsonform-container", "true");
      container.replaceWith(fresh);
      reactJsonForm.createForm({
        containerId: fresh.id, dataInputId: input.id, schema: schema,
        data: JSON.parse(input.value || "[]"), errorMap: {}, fileHandler: "",
        fileHandlerArgs: {}, readonly: false,
      }).render();
      text.hidden = true;
      toggle.textContent = "Edit as JSON";
    });
  }

  // The steps the form will save, in the order the save puts them (by position, empty last).
  function stepRows() {
    var rows = Array.prototype.slice.call(
      document.querySelectorAll("#steps-group tr.form-row:not(.empty-form)"));
    return rows
      .filter(function (row) {
        var remove = row.querySelector("input[id$='-DELETE']");
        return typeSelect(row) && typeSelect(row).value && !(remove && remove.checked);
      })
      .map(function (row, index) {
        var position = parseInt(row.querySelector("input.step-position").value, 10);
        return { row: row, index: index, position: position };
      })
      .sort(function (a, b) {
        var aEmpty = isNaN(a.position) ? 1 : 0;
        var bEmpty = isNaN(b.position) ? 1 : 0;
        return aEmpty - bEmpty || (aEmpty ? 0 : a.position - b.position) || a.index - b.index;
      })
      .map(function (entry) { return entry.row; });
  }

  function collect() {
    var local = triggersJson ? [{ step: null, field: "triggers", text: triggersJson }] : [];
    var steps = stepRows().map(function (row, index) {
      var text = configArea(row).value.trim();
      var config = "";
      if (text) {
        try {
          config = JSON.parse(text);
        } catch (error) {
          local.push({ step: index, field: "config", text: "Enter a valid JSON." });
        }
      }
      var step = { type: typeSelect(row).value, config: config };
      var id = row.querySelector("input[id$='-step_id']");
      if (id && id.value.trim()) step.id = id.value.trim();
      return step;
    });
    var body = { workflow: workflowId, steps: steps };
    var triggers = document.getElementById("id_triggers");
    if (triggers && triggers.value) {
      try {
        body.triggers = JSON.parse(triggers.value);
      } catch (error) {
        // django-jsonform keeps it JSON; the save says what is wrong otherwise
      }
    }
    var entityType = document.getElementById("id_entity_type");
    if (entityType) body.entityType = entityType.value;
    return { body: body, local: local };
  }

  function check() {
    var collected = collect();
    if (collected.local.length) return Promise.resolve(collected.local);
    var form = document.getElementById("workflow_form");
    return fetch(checkUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value,
      },
      body: JSON.stringify(collected.body),
    }).then(function (response) {
      if (!response.ok) return null; // the save checks again
      return response.json().then(function (answer) { return answer.problems; });
    }).catch(function () { return null; });
  }

  function problemList(parent, before) {
    var list = parent.querySelector(":scope > ul.editor-problems");
    if (!list) {
      list = document.createElement("ul");
      list.className = "errorlist editor-problems";
      parent.insertBefore(list, before || parent.firstChild);
    }
    return list;
  }
  function showProblems(problems) {
    document.querySelectorAll("ul.editor-problems").forEach(function (list) { list.remove(); });
    var rows = stepRows();
    // Each step's form marks the fields its problems name (django-jsonform's error map).
    var marks = rows.map(function () { return {}; });
    (problems || []).forEach(function (problem) {
      if (problem.step === null || !marks[problem.step] || !(problem.path || []).length) return;
      var key = problem.path.join("§");
      (marks[problem.step][key] = marks[problem.step][key] || []).push(problem.text);
    });
    rows.forEach(function (row, index) {
      if (row.stepForm) row.stepForm.update({ errorMap: marks[index] });
    });
    (problems || []).forEach(function (problem) {
      var list;
      if (problem.field === "triggers") {
        var field = document.querySelector(".field-triggers");
        list = problemList(field);
      } else if (problem.step !== null && rows[problem.step]) {
        var box = rows[problem.step].querySelector(".step-config");
        list = problemList(box);
      } else {
        list = problemList(document.getElementById("steps-group"));
      }
      var item = document.createElement("li");
      item.textContent = problem.text;
      list.appendChild(item);
    });
    return problems && problems.length;
  }

  function scheduleCheck() {
    clearTimeout(timer);
    timer = setTimeout(function () { check().then(showProblems); }, 400);
  }

  function wireAll() {
    document.querySelectorAll("#steps-group tr.form-row:not(.empty-form)").forEach(wire);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var typesScript = document.getElementById("step-editor-types");
    var checkScript = document.getElementById("step-editor-check");
    var form = document.getElementById("workflow_form");
    if (!typesScript || !checkScript || !form) return;
    types = JSON.parse(typesScript.textContent);
    checkUrl = checkScript.dataset.url;
    workflowId = checkScript.dataset.workflow;
    wireAll();
    wireTriggers();
    document.addEventListener("formset:added", wireAll);
    form.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      if (form.dataset.checked === "1" || (submitter && submitter.hasAttribute("formnovalidate"))) {
        return;
      }
      event.preventDefault();
      clearTimeout(timer);
      check().then(function (problems) {
        if (showProblems(problems)) {
          document.querySelector("ul.editor-problems").scrollIntoView({ block: "center" });
          return;
        }
        form.dataset.checked = "1";
        form.requestSubmit(submitter || undefined);
      });
    });
  });
})();
