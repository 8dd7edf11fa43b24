// A producer call's QueueFull refusals per partition: which records a full partition refused while the others wrote theirs.
using System;
using System.Collections.Generic;
using System.Threading.Tasks;

namespace WriteBehind.Engine.Redis
{
    /// <summary>Collects, for one producer call split over partitions (one script each), the records of the partitions
    /// that refused with QueueFull, so that the call reports exactly those: the others were written.</summary>
    internal sealed class PartitionRefusals
    {
        private readonly bool[] _refused;
        private WriteBehindException _first;
        private int _count;

        public PartitionRefusals(int records)
        {
            _refused = new bool[records];
        }

        /// <summary>Runs one partition's part; a QueueFull marks its records refused instead of failing the call.</summary>
        public Task Run(IReadOnlyList<int> indices, Func<Task> part) => Run(indices, async () => { await part().ConfigureAwait(false); return 0L; });

        /// <summary>Runs one partition's part; a QueueFull marks its records refused (and gives 0) instead of failing the call.</summary>
        public async Task<long> Run(IReadOnlyList<int> indices, Func<Task<long>> part)
        {
            try
            {
                return await part().ConfigureAwait(false);
            }
            catch (WriteBehindException ex) when (ex.ErrorId == ErrorIds.QueueFull)
            {
                lock (_refused)
                {
                    if (_first == null) _first = ex;
                    foreach (int i in indices) _refused[i] = true;
                    _count += indices.Count;
                }
                return 0;
            }
        }

        /// <summary>After every part: the QueueFull as it came when every record was refused (nothing was written),
        /// a <see cref="QueueFullPartlyException"/> carrying <paramref name="accepted"/> when only some were.</summary>
        public void ThrowIfAny(object accepted)
        {
            if (_first == null) return;
            if (_count >= _refused.Length) throw _first;
            throw new QueueFullPartlyException(_first, _refused, accepted);
        }
    }
}
