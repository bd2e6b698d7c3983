package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/vigil-fraud/vigil/models/dataset"
	"github.com/vigil-fraud/vigil/models/features"
)

// Feature rows cost ~0.2 ms each to compute (the stream's plans run against an in-memory
// store), minutes for the Handbook's data set, so train, evaluate and score share them through
// a cache file next to the data: <data>.<schema hash>.d<delay>.features. It is keyed by the
// data file's size and modification time, the schema hash and the delay. A miss computes every
// row of the file, not only the rows the command needs: a row's features depend only on the
// rows before it, so the extra rows cost time once and spare the next command (evaluate after
// train, score of a later window) a full recomputation.

const cacheMagic = "vigil-features-1"

type cacheKey struct {
	size, mtime int64
	delayDays   int
}

func cachePath(data string, delayDays int) string {
	return fmt.Sprintf("%s.%s.d%d.features", data, features.SchemaHash(), delayDays)
}

func keyOf(data string, delayDays int) (cacheKey, error) {
	st, err := os.Stat(data)
	if err != nil {
		return cacheKey{}, err
	}
	return cacheKey{size: st.Size(), mtime: st.ModTime().UnixNano(), delayDays: delayDays}, nil
}

// cachedFeatures returns feature rows for rows[0:upTo], from the cache when it has them; on a
// miss it computes and caches all of rows.
func cachedFeatures(data string, rows []dataset.Row, upTo, delayDays int, stderr io.Writer) ([][]float64, error) {
	key, err := keyOf(data, delayDays)
	if err != nil {
		return nil, flagErr("data", "%v", err)
	}
	path := cachePath(data, delayDays)
	if X, err := readCache(path, key, upTo); err == nil {
		fmt.Fprintf(stderr, "features: %d rows from cache %s\n", upTo, path)
		return X, nil
	}
	t0 := time.Now()
	X := computeFeatures(rows, len(rows), delayDays, stderr)
	fmt.Fprintf(stderr, "features: %d rows in %.1fs\n", len(rows), time.Since(t0).Seconds())
	if err := writeCache(path, key, X); err != nil {
		fmt.Fprintf(stderr, "features: not cached: %v\n", err)
		os.Remove(path)
	}
	return X[:upTo:upTo], nil
}

func readCache(path string, key cacheKey, upTo int) ([][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(cacheMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != cacheMagic {
		return nil, errors.New("not a feature cache")
	}
	var hdr [5]int64
	if err := binary.Read(r, binary.LittleEndian, &hdr); err != nil {
		return nil, err
	}
	d := len(features.Names)
	if hdr[0] != key.size || hdr[1] != key.mtime || hdr[2] != int64(key.delayDays) || hdr[4] != int64(d) {
		return nil, errors.New("stale feature cache")
	}
	if hdr[3] < int64(upTo) {
		return nil, errors.New("feature cache too short")
	}
	flat := make([]float64, upTo*d)
	buf := make([]byte, 8*d)
	X := make([][]float64, upTo)
	for i := range upTo {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		row := flat[i*d : (i+1)*d : (i+1)*d]
		for j := range row {
			row[j] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*j:]))
		}
		X[i] = row
	}
	return X, nil
}

func writeCache(path string, key cacheKey, X [][]float64) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(cacheMagic)
	d := len(features.Names)
	binary.Write(w, binary.LittleEndian, [5]int64{key.size, key.mtime, int64(key.delayDays), int64(len(X)), int64(d)})
	buf := make([]byte, 8*d)
	for _, row := range X {
		for j, v := range row {
			binary.LittleEndian.PutUint64(buf[8*j:], math.Float64bits(v))
		}
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
