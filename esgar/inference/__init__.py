"""New sketches in, attributes out: a trained model on files nobody labelled.

    predictor = Predictor.from_dir("models/esgar")                   # esgar.inference.model
    table, failures = collect(["my_sketches/"], photos="my_photos/")  # esgar.inference.files
    result = predict(predictor, table, MaskOptions())                 # esgar.inference.predict
    result.frame()        # one row per sketch: its classes and probabilities, or its error

One module per job: `model` (a trained folder and its mask recipe), `files` (which files are
sketches, their photos and masks), `masking` (masks for new sketches, made as the masks stage
makes them), `results` (what comes out), `predict` (the run), `payload` (a served request's
rows as files, and back). `pyfunc` is the model MLflow serves, built on them. A registry
reference or a run id is resolved to a folder by the caller (`esgar.cli`), never here.
"""
