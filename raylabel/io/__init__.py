"""Storage (local paths and S3 through pyarrow), the run and model layout under
`output.root`, the labeled-row schemas, and what a failing store looks like."""
