// Package storage moves the trainer's inputs and outputs between object stores and the local disk.
//
// A Location is a storage URI prefix: s3://bucket/prefix (endpoint, region, use_path_style and the other options of
// gocloud.dev/blob's s3blob in the query), gs://bucket/prefix, azblob://container/prefix or file:///path. The
// operator turns pvc://claim/path into file:///mnt/pvc/claim/path before the trainer sees it. Credentials come from
// each cloud's standard environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS,
// AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY...), never from the URI, and every error this package returns has the
// values of those variables scrubbed out.
//
// The trainer works on local directories (trainer/checkpoint). For a remote output it trains in a scratch
// directory and uploads each checkpoint with UploadDir, COMPLETE last, so a reader never sees a checkpoint whose
// COMPLETE is present before its files. For file:// the trainer writes in place and nothing is copied.
//
// Models on the Hugging Face Hub (hf://org/name[@revision]) are downloaded by HubClient.Download through the
// Hub's HTTP API ($HF_ENDPOINT, $HF_TOKEN), at the commit the revision resolves to (see hub.go).
package storage
