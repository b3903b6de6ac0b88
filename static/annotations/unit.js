// Keyboard for comparative units. Best–worst: a digit picks the best, the next digit the worst,
// Backspace starts over. Pairwise: ← left, → right, ↓ equally good. Enter submits a complete answer.
// The page works without this script (radio buttons and a submit button); this only adds speed.
(function () {
  "use strict";
  var form = document.getElementById("unit-form");
  if (!form) return;
  var kind = form.getAttribute("data-kind");
  var status = document.getElementById("key-status");
  var submitted = false;

  function say(text) { if (status) status.textContent = text; }
  function checked(name) { return form.querySelector('input[name="' + name + '"]:checked'); }
  function optionInput(name, number) {
    var li = form.querySelector('.option[data-number="' + number + '"]');
    return li ? li.querySelector('input[name="' + name + '"]') : null;
  }
  function complete() {
    return kind === "bws" ? !!(checked("best") && checked("worst")) : !!checked("best");
  }

  // Picking best and worst on the same description is impossible: the other choice gives way.
  form.addEventListener("change", function (event) {
    var input = event.target;
    if (kind !== "bws" || input.type !== "radio") return;
    var other = input.name === "best" ? "worst" : "best";
    var clash = checked(other);
    if (clash && clash.value === input.value) clash.checked = false;
  });

  function bwsKey(digit) {
    var best = checked("best");
    var step = best && !checked("worst") ? "worst" : "best";
    if (step === "best" && checked("worst")) {
      form.querySelectorAll('input[type="radio"]').forEach(function (i) { i.checked = false; });
    }
    var input = optionInput(step, digit);
    if (!input) return false;
    if (step === "worst" && best.value === input.value) {
      say("The worst must be a different description from the best.");
      return true;
    }
    input.checked = true;
    input.focus();
    say(step === "best" ? "Best: description " + digit + ". Now press the number of the worst." :
        "Worst: description " + digit + ". Press Enter to submit.");
    return true;
  }

  function pairKey(side) {
    var label = form.querySelector('[data-side="' + side + '"]');
    var input = label ? label.querySelector("input") : null;
    if (!input) return false;
    input.checked = true;
    input.focus();
    say(side === "tie" ? "Equally good. Press Enter to submit." : "The " + side + " description. Press Enter to submit.");
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
    if (event.target && event.target.tagName === "TEXTAREA") return;
    var handled = false;
    if (kind === "bws" && /^[1-9]$/.test(event.key)) handled = bwsKey(event.key);
    else if (kind === "bws" && (event.key === "Backspace" || event.key === "Escape")) {
      form.querySelectorAll('input[type="radio"]').forEach(function (i) { i.checked = false; });
      say("Cleared. Press the number of the best description.");
      handled = true;
    } else if (kind === "pairwise" && event.key === "ArrowLeft") handled = pairKey("left");
    else if (kind === "pairwise" && event.key === "ArrowRight") handled = pairKey("right");
    else if (kind === "pairwise" && event.key === "ArrowDown") handled = pairKey("tie");
    else if (event.key === "Enter") {
      handled = true;
      if (complete()) form.requestSubmit ? form.requestSubmit() : form.submit();
      else say(kind === "bws" ? "Choose both the best and the worst first." : "Choose a description first.");
    }
    if (handled) event.preventDefault();
  });
})();
