// Sortable tables: a click (or Enter) on a header with data-sort orders the rows by that
// column; numbers by the cell's data-value (empty last), text by its content.
(function () {
  "use strict";
  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("th[data-sort]").forEach((th, _i) => {
      const index = Array.from(th.parentElement.children).indexOf(th);
      th.tabIndex = 0;
      th.setAttribute("role", "button");
      th.title = (th.title ? th.title + " · " : "") + "click to sort";
      const sort = () => {
        const body = table.tBodies[0];
        const rows = Array.from(body.rows).filter((r) => r.dataset.session);
        const dir = th.dataset.dir === "asc" ? "desc" : "asc";
        table.querySelectorAll("th[data-sort]").forEach((h) => { delete h.dataset.dir; h.removeAttribute("aria-sort"); });
        th.dataset.dir = dir;
        th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
        const key = (row) => {
          const cell = row.children[index];
          if (th.dataset.sort === "num") {
            const v = cell.dataset.value;
            return v === undefined || v === "" ? null : Number(v);
          }
          return cell.textContent.trim().toLowerCase();
        };
        rows.sort((a, b) => {
          const ka = key(a), kb = key(b);
          if (ka === null) return 1;
          if (kb === null) return -1;
          const c = ka < kb ? -1 : ka > kb ? 1 : 0;
          return dir === "asc" ? c : -c;
        });
        rows.forEach((r) => body.appendChild(r));
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  });
})();
