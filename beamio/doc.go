// Package beamio reads Parquet datasets on Apache Beam, through the read plan
// of package dataset and the gcsfs filesystem, so one pipeline scales out on
// any Beam runner: prism in-process, Dataflow, Flink or Spark.
//
//	p, s := beam.NewPipelineWithRoot()
//	batches := beamio.ReadParquet(s, "gs://my-bucket?zonal=true", "train/*.parquet",
//		&beamio.ReadOptions{Columns: []string{"user", "clicks"}})
//	// batches is a PCollection of beamio.Batch: Arrow record batches.
//
// # How the read is cut
//
// ReadParquet plans the read once, on one worker: it lists the files
// matching the pattern, reads their footers (one ranged read each) and
// builds the dataset's read plan (dataset.Plan): units of whole row groups,
// neighbouring small ones merged up to TargetBlockBytes. The plan travels as
// one element to a splittable DoFn whose restriction is an offset range over
// the plan's units. The runner splits that range before processing (by
// size: ranges of about SplitBytes each) and while it runs (dynamic
// splitting, through the standard offset-range tracker): a unit is the
// smallest piece of work and is read by exactly one restriction. A unit
// fetches only its projected column chunks (neighbours coalesced), through
// gcsfs: prefetch, and pools of multi-range downloaders on zonal buckets.
//
// The element is the whole saved plan (dataset.WritePlan: every file's
// footer and version), and a runner ships it with each restriction it splits
// off: a few KiB per file, so a dataset of thousands of files makes elements
// of megabytes. Workers parse it once per DoFn instance, and every read
// checks that its file is still the version planned (dataset.ErrPlanStale).
//
// Every batch has the dataset's unified schema (see package dataset): files
// that lack a column give nulls, int32 and float32 widen. Columns projects.
//
// # Elements
//
// Batch carries an arrow.RecordBatch. Between stages the runner encodes it
// with the coder this package registers (EncodeBatch and DecodeBatch: the
// Arrow IPC stream format), so a Batch crosses processes and machines as
// Arrow, with no reflection over Go structs.
//
// # Where files are read
//
// Workers open the filesystem from the URL given to ReadParquet with
// gcsfs.Open, once per DoFn instance (so once per worker thread, not per
// element), and close it at Teardown: gs://bucket (Application Default
// Credentials on the workers, or the emulator named by
// STORAGE_EMULATOR_HOST), gs://bucket?zonal=true for Rapid buckets, or
// file:///dir on a filesystem every worker sees. mem:// is per process and
// only useful with runners that run the whole pipeline in one process.
package beamio
