"""A small oblique single-frame DICOM MR series for tests (pydicom), with what a DICOM SEG needs from its sources."""

from pathlib import Path

import numpy as np


def write_dicom_series(folder: Path, count: int = 3, rows: int = 4, columns: int = 6, pixels=None) -> list[Path]:
    """Write ``count`` slices (rows x columns, pixel spacing 0.8 x 0.5 mm, 2 mm apart, rows tilted
    0.3 rad in the axial plane) to ``folder``; ``pixels``: optional K x rows x columns uint16 array.
    Returns the files, slice k in file k."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    row, column = np.array([np.cos(0.3), np.sin(0.3), 0.0]), np.array([0.0, 0.0, -1.0])
    normal = np.cross(row, column)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir(parents=True)
    files = []
    for k in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P1", "Phantom^One", "20000101", "O"
        ds.StudyID, ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = (
            "1",
            "20260101",
            "120000",
            "A1",
            "",
        )
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", 1, k + 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.Rows, ds.Columns = rows, columns
        ds.ImageOrientationPatient = [*row, *column]
        ds.ImagePositionPatient = list(np.array([5.0, -7.0, 40.0]) + k * 2.0 * normal)
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.5], 2.0
        plane = (
            pixels[k]
            if pixels is not None
            else np.arange(rows * columns, dtype=np.uint16).reshape(rows, columns) + 100 * k
        )
        ds.PixelData = np.ascontiguousarray(plane, dtype=np.uint16).tobytes()
        path = folder / f"im{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files
