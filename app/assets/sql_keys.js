// Ctrl+Enter (or Cmd+Enter) in the SQL box runs the query, like the Run button.
document.addEventListener("keydown", function (event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target && event.target.id === "sql-query") {
    event.preventDefault();
    var button = document.getElementById("sql-run");
    if (button) { button.click(); }
  }
});
