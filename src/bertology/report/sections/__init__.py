"""One module per report section (or pair of sections): each runs its experiment at report settings and
turns the result into `Section`s. `report.SECTIONS` lists them in page order."""
