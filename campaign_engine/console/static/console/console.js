// The console's own script (no inline scripts: the Content-Security-Policy allows only this
// server's files). Buttons and forms marked data-confirm ask before they act.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
