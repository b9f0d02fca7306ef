// The workflow form's steps: ↑/↓ buttons move a step, and every step's position is
// renumbered in the page's order, so staff never type a position.
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
  function wire(row) {
    var input = row.querySelector("input.step-position");
    if (!input || row.dataset.moveWired) return;
    row.dataset.moveWired = "1";
    var cell = input.parentNode;
    cell.appendChild(button("↑", "Move this step up", function () { move(row, false); }));
    cell.appendChild(button("↓", "Move this step down", function () { move(row, true); }));
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
  document.addEventListener("DOMContentLoaded", function () {
    wireAll();
    document.addEventListener("change", function (event) {
      if (event.target.matches("select[id$='-type']")) wireAll();
    });
    document.addEventListener("formset:added", wireAll);
  });
})();
