// Keyboard shortcuts for the rating page: a digit picks that scale point, Enter submits.
// The page works without this script (radio buttons and a submit button); this only adds speed.
(function () {
  "use strict";
  var form = document.getElementById("rating-form");
  if (!form) return;
  var submitted = false;

  function choose(digit) {
    var input = form.querySelector('input[name="value"][value="' + digit + '"]');
    if (!input) return false;
    input.checked = true;
    input.focus();
    return true;
  }

  form.addEventListener("submit", function (event) {
    // A double click or a held Enter must not send the form twice (the server would treat it as a replay).
    if (submitted) { event.preventDefault(); return; }
    submitted = true;
    document.getElementById("submit").disabled = true;
  });

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var inText = event.target && event.target.tagName === "TEXTAREA";
    if (!inText && /^[0-9]$/.test(event.key)) {
      if (choose(event.key)) event.preventDefault();
    } else if (event.key === "Enter" && !inText) {
      event.preventDefault();
      if (form.querySelector('input[name="value"]:checked')) {
        form.requestSubmit ? form.requestSubmit() : form.submit();
      }
    }
  });
})();
