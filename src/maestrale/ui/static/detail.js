/* The version page's "Copy" buttons: <button data-copy="ID"> copies the value of the input ID.
 * Without the clipboard API (plain HTTP on another host), the text is selected for Ctrl+C. */
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("button[data-copy]") : null;
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    field.select();
    var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { /* selected: Ctrl+C works */ });
    }
  });
})();
