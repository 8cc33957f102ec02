// Controls that cannot be undone ask first: a stop or an abort of a session (the reason is
// required by the form and the server alike).
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => {
      const action = e.submitter ? e.submitter.value : "";
      if (action !== "stop" && action !== "abort") return;
      const what = action === "abort" ? "Abort" : "Stop";
      if (!window.confirm(what + " " + form.dataset.confirm + "? This ends the session for good.")) e.preventDefault();
    });
  });
})();
