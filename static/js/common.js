// Behaviour shared by every page (loaded from base.html, before the page's own scripts).

// Plotly renders a few HTML tags (<a>, <b>, <span style>) in labels: user text goes in inert.
window.ptd = {
  inert: (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"),
};

// Forms that end something (revoke a token, cancel a run) ask first: <form data-confirm="...">.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// <button data-copy="ID"> copies the text of element ID (the clipboard API needs a secure
// context: elsewhere the text is selected for Ctrl+C).
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  const selectIt = () => window.getSelection().selectAllChildren(source);
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => { button.textContent = "Copied"; }, selectIt);
  } else {
    selectIt();
    button.textContent = "Selected: press Ctrl+C";
  }
});

// <button data-print> prints the page (no inline handlers: the CSP allows no inline script).
document.addEventListener("click", (event) => {
  if (event.target.closest && event.target.closest("button[data-print]")) window.print();
});
