// The entity search of the run, test and experiment forms, live: as staff type or pick a
// status, the page asks its own view (by GET, as the search form would) and swaps in the
// parts marked data-entity-search-part (the count, the matches to tick, what is made of
// them), so the rest of the form keeps what was typed. Without JavaScript the form submits.
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
    for (const part of document.querySelectorAll("[data-entity-search-part]")) {
      const fresh = page.getElementById(part.id);
      if (fresh) part.replaceWith(document.importNode(fresh, true));
    }
    history.replaceState(history.state, "", `${location.pathname}?${query}`);
    form.dataset.shown = query; // what the page now shows (tests wait for it)
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
