// The workflow form's steps: a step is dragged by its ⠿ handle or moved by ↑/↓, and every
// step's position is renumbered in the page's order, so staff never type a position.
(function () {
  "use strict";
  function rows(group) {
    return Array.prototype.slice.call(group.querySelectorAll("tr.form-row:not(.empty-form)"));
  }
  function chosen(row) {
    var type = row.querySelector("select[id$='-type']");
    return type && type.value;
  }
  function renumber(group) {
    var position = 1;
    rows(group).forEach(function (row) {
      var input = row.querySelector("input.step-position");
      if (!input) return;
      if (chosen(row) || input.value) input.value = String(position++);
    });
  }
  function move(row, down) {
    var group = row.closest(".inline-group");
    var sibling = down ? row.nextElementSibling : row.previousElementSibling;
    while (sibling && !sibling.matches("tr.form-row:not(.empty-form)")) {
      sibling = down ? sibling.nextElementSibling : sibling.previousElementSibling;
    }
    if (!sibling) return;
    row.parentNode.insertBefore(row, down ? sibling.nextSibling : sibling);
    renumber(group);
  }
  function button(label, title, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "step-move button";
    b.textContent = label;
    b.title = title;
    b.addEventListener("click", onClick);
    return b;
  }
  var dragged = null;
  function handle(row) {
    var grip = document.createElement("span");
    grip.className = "step-drag";
    grip.textContent = "⠿";
    grip.title = "Drag to move this step";
    grip.draggable = true;
    grip.addEventListener("dragstart", function (event) {
      dragged = row;
      row.classList.add("step-dragged");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", row.id);
      event.dataTransfer.setDragImage(row, 12, 12);
    });
    grip.addEventListener("dragend", function () {
      row.classList.remove("step-dragged");
      dragged = null;
    });
    return grip;
  }
  function dragOver(row, event) {
    if (!dragged || dragged === row || dragged.parentNode !== row.parentNode) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    var box = row.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    row.parentNode.insertBefore(dragged, after ? row.nextSibling : row);
    renumber(row.closest(".inline-group"));
  }
  function wire(row) {
    var input = row.querySelector("input.step-position");
    if (!input || row.dataset.moveWired) return;
    row.dataset.moveWired = "1";
    var cell = input.parentNode;
    cell.insertBefore(handle(row), input);
    cell.appendChild(button("↑", "Move this step up", function () { move(row, false); }));
    cell.appendChild(button("↓", "Move this step down", function () { move(row, true); }));
    row.addEventListener("dragover", function (event) { dragOver(row, event); });
    row.addEventListener("drop", function (event) {
      if (dragged) event.preventDefault();
    });
  }
  function wireAll() {
    document.querySelectorAll("input.step-position").forEach(function (input) {
      var row = input.closest("tr.form-row");
      if (row && !row.classList.contains("empty-form")) wire(row);
    });
    document.querySelectorAll(".inline-group").forEach(function (group) {
      if (group.querySelector("input.step-position")) renumber(group);
    });
  }
  // A form shown again after a refused save lists its rows in the formset's order: put them
  // back in the order of the positions they were sent with (empty last) before renumbering.
  function sortByPosition(group) {
    var ordered = rows(group).map(function (row, index) {
      var input = row.querySelector("input.step-position");
      var position = input ? parseInt(input.value, 10) : NaN;
      return { row: row, index: index, position: isNaN(position) ? Infinity : position };
    }).sort(function (a, b) { return a.position - b.position || a.index - b.index; });
    var last = ordered.length ? rows(group)[rows(group).length - 1].nextSibling : null;
    ordered.forEach(function (entry) { entry.row.parentNode.insertBefore(entry.row, last); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".inline-group").forEach(function (group) {
      if (group.querySelector("input.step-position")) sortByPosition(group);
    });
    wireAll();
    document.addEventListener("change", function (event) {
      if (event.target.matches("select[id$='-type']")) wireAll();
    });
    document.addEventListener("formset:added", wireAll);
  });
})();
