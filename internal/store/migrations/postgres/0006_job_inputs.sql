-- A job reads its input from an object of its own, copied from the upload
-- when the job is made, under a key no upload URL can write
-- (jobs/{jobId}/input/{fileName}); input_key names it. It is NULL for
-- uploads no job was made from, and for jobs made before inputs were
-- copied: those go on reading their upload's object, object_key.
ALTER TABLE uploads ADD COLUMN input_key TEXT;
