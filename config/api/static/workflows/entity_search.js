// The entity search of the run, test and experiment forms, live: as staff type or pick a
// status, the page asks its own view (by GET, as the search form would) and swaps in the
// parts marked data-entity-search-part (the count, the matches to tick, what is made of
// them), so the rest of the form keeps what was typed, and every entity ticked stays ticked:
// those the new matches hold are ticked there, the others listed apart (the matches' row
// template), so the form still posts them. Without JavaScript the form submits.
(function () {
  "use strict";
  const form = document.getElementById("entity-search");
  if (!form) return;
  let timer = null;
  let asked = 0;

  async function refresh() {
    const query = new URLSearchParams(new FormData(form)).toString();
    const mine = ++asked;
    const response = await fetch(`${location.pathname}?${query}`, {
      credentials: "same-origin",
    });
    if (mine !== asked) return; // a later search's answer is the one to show
    if (!response.ok) throw new Error(`search answered ${response.status}`);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const ticked = tickedIds();
    for (const part of document.querySelectorAll("[data-entity-search-part]")) {
      const fresh = page.getElementById(part.id);
      if (fresh) part.replaceWith(document.importNode(fresh, true));
    }
    keepTicked(ticked);
    history.replaceState(history.state, "", `${location.pathname}?${query}`);
    form.dataset.shown = query; // what the page now shows (tests wait for it)
  }

  function tickedIds() {
    const boxes = document.querySelectorAll("#entity-matches input[name=entity_ids]:checked");
    return Array.from(boxes, (box) => box.value);
  }

  function keepTicked(ids) {
    const matches = document.getElementById("entity-matches");
    if (!matches) return;
    const shown = new Map();
    for (const box of matches.querySelectorAll("input[name=entity_ids]")) {
      shown.set(box.value, box);
    }
    const apart = document.getElementById("entity-ticked-elsewhere");
    const row = document.getElementById("entity-ticked-row");
    for (const id of new Set(ids)) {
      if (shown.has(id)) {
        shown.get(id).checked = true;
      } else if (apart && row) {
        const item = row.content.firstElementChild.cloneNode(true);
        const box = item.querySelector("input");
        box.name = "entity_ids"; // none in the row template: the page counts its boxes
        box.value = id;
        item.querySelector("span").textContent = id;
        apart.querySelector("ul").append(item);
        apart.hidden = false;
      }
    }
  }

  function search() {
    clearTimeout(timer);
    refresh().catch(() => form.submit()); // the page's own search, then
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 250);
  });
})();
