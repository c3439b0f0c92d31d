// Shows only the fields of the kind chosen in each rule row. Without JavaScript every
// field stays visible and the server reads the ones of the chosen kind.
document.querySelectorAll("#rules tr.rule").forEach((row) => {
  const kind = row.querySelector("select.kind");
  const update = () => {
    row.querySelectorAll(".fields").forEach((fields) => {
      fields.hidden = fields.dataset.kind !== kind.value;
    });
  };
  kind.addEventListener("change", update);
  update();
});
